"""``khupho users ...`` and ``khupho audit ...``: accounts and the audit log from the command line.

Both work on the security tables of the config's event database (the SQLite file or the PostgreSQL
database) or on the SQLite file given by ``--db``; the service may be running meanwhile (SQLite WAL;
PostgreSQL's writers take turns under an advisory lock).
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Annotated

import typer

users_app = typer.Typer(no_args_is_help=True, help="Accounts: add, list, change passwords, disable.")
audit_app = typer.Typer(no_args_is_help=True, help="The audit log: verify its hash chain, export it.")

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML configuration (for the database)")
]
DbOpt = Annotated[Path | None, typer.Option("--db", help="the SQLite database (instead of --config)")]
PASSWORD_ENV = "KHUPHO_PASSWORD"


def _open(config: Path | None, db: Path | None):  # type: ignore[no-untyped-def]
    from api.auth import ScopeIndex
    from api.auth.db import open_security_db
    from api.auth.security import Security
    from api.config import ConfigError, load_config
    from events.storage.store import StorageError

    if db is not None:
        return Security.open(db, ScopeIndex())
    try:
        cfg = load_config(config or Path("khupho.yaml"))
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    scope = ScopeIndex(
        wards=cfg.wards,
        khu_pho=cfg.khu_pho,
        camera_khu_pho={cam_id: cam.khu_pho for cam_id, cam in cfg.cameras.items()},
    )
    try:
        security_db = open_security_db(cfg.storage.database)
    except StorageError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    return Security.open(security_db, scope, cfg.auth)


def _password(prompt: str) -> str:
    """From $KHUPHO_PASSWORD (scripts) or typed twice without echo; never an argument (shell history)."""
    given = os.environ.get(PASSWORD_ENV)
    if given:
        return given
    first = getpass.getpass(f"{prompt}: ")
    if first != getpass.getpass(f"{prompt} (again): "):
        typer.echo("error: the passwords differ", err=True)
        raise typer.Exit(2)
    return first


@users_app.command("add")
def users_add(
    username: str,
    role: Annotated[str, typer.Option(help="admin, supervisor, operator or viewer")],
    scope: Annotated[
        list[str] | None,
        typer.Option(help="ward id (supervisor) or khu phố id (operator, viewer); repeatable"),
    ] = None,
    unredacted: Annotated[bool, typer.Option(help="may view snapshots without face blur")] = False,
    config: ConfigOpt = None,
    db: DbOpt = None,
) -> None:
    """Add an account (password from $KHUPHO_PASSWORD or typed)."""
    from api.auth.principal import USER_ROLES, Role
    from api.auth.store import UserError

    if role not in USER_ROLES:
        typer.echo(f"error: --role must be one of {', '.join(USER_ROLES)}", err=True)
        raise typer.Exit(2)
    security = _open(config, db)
    try:
        if db is None:
            security.scope.check_scopes(Role(role), scope or [])
        user = security.auth.add_user(
            username, _password("password"), Role(role), scope or [], unredacted=unredacted
        )
    except (ValueError, UserError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    security.audit.record("cli", "user.add", user.username, role=role, scopes=scope or [])
    typer.echo(f"added {user.username} ({user.role})")


@users_app.command("list")
def users_list(config: ConfigOpt = None, db: DbOpt = None) -> None:
    """Accounts with role, scopes and state."""
    security = _open(config, db)
    for u in security.auth.users():
        flags = [f for f, on in (("unredacted", u.unredacted), ("disabled", u.disabled)) if on]
        typer.echo(f"{u.username}\t{u.role}\t{','.join(u.scopes) or '-'}\t{' '.join(flags)}")


@users_app.command("passwd")
def users_passwd(username: str, config: ConfigOpt = None, db: DbOpt = None) -> None:
    """Set a password; every session of the account ends."""
    from api.auth.store import UserError

    security = _open(config, db)
    try:
        security.auth.set_password(username, _password("new password"))
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    security.audit.record("cli", "user.password_reset", username)
    typer.echo(f"password of {username} changed; its sessions ended")


@users_app.command("disable")
def users_disable(
    username: str,
    enable: Annotated[bool, typer.Option("--enable", help="enable again instead")] = False,
    config: ConfigOpt = None,
    db: DbOpt = None,
) -> None:
    """Disable an account (its sessions end at once)."""
    from api.auth.store import UserError

    security = _open(config, db)
    try:
        security.auth.update_user(username, disabled=not enable)
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    security.audit.record("cli", "user.change", username, disabled=not enable)
    typer.echo(f"{username} {'enabled' if enable else 'disabled'}")


@audit_app.command("verify")
def audit_verify(config: ConfigOpt = None, db: DbOpt = None) -> None:
    """Check the hash chain; exit 1 naming the first edited or missing row."""
    result = _open(config, db).audit.verify()
    if not result.ok:
        typer.echo(f"audit log BROKEN after {result.rows} good rows: {result.problem}", err=True)
        raise typer.Exit(1)
    typer.echo(f"audit log intact: {result.rows} rows, head {result.head}")


@audit_app.command("export")
def audit_export(
    out: Annotated[Path, typer.Option(help="CSV file to write")] = Path("audit.csv"),
    config: ConfigOpt = None,
    db: DbOpt = None,
) -> None:
    """Write the whole log as CSV."""
    security = _open(config, db)
    with out.open("w", encoding="utf-8", newline="") as f:
        for chunk in security.audit.to_csv():
            f.write(chunk)
    typer.echo(f"wrote {out}")
