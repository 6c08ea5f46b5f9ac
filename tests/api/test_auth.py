"""Accounts, sessions, CSRF, the login rate limit, API keys and the first-start administrator."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.auth import Role, ScopeIndex
from api.auth.config import AuthConfig
from api.auth.security import ADMIN_PASSWORD_ENV, Security
from api.cli import app as cli
from tests.api.support import ADMIN_PASSWORD, PASSWORD, SCOPE, Parts, login, make_event, start


def _add(parts: Parts, name: str, role: Role, scopes: list[str], **kw: bool) -> None:
    parts.security.auth.add_user(name, PASSWORD, role, scopes, **kw)


def test_login_sets_httponly_samesite_cookie_and_passwords_are_argon2(parts: Parts) -> None:
    with TestClient(parts.app()) as c:
        r = c.post("/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        assert r.status_code == 200 and r.json()["role"] == "admin" and r.json()["csrf_token"]
        cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("khupho_session="))
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
        assert c.get("/auth/me").json()["username"] == "admin"
    with TestClient(parts.app(), base_url="https://testserver") as c:
        r = c.post("/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("khupho_session="))
        assert "Secure" in cookie  # over TLS
    db = sqlite3.connect(parts.security.db.path)
    (stored,) = db.execute("SELECT password_hash FROM users WHERE username = 'admin'").fetchone()
    assert stored.startswith("$argon2id$") and ADMIN_PASSWORD not in stored
    # Session tokens are kept hashed too.
    tokens = [row[0] for row in db.execute("SELECT token_hash FROM sessions")]
    assert tokens and all(len(t) == 64 for t in tokens)
    db.close()


def test_wrong_password_is_401_logged_and_audited(parts: Parts, caplog: pytest.LogCaptureFixture) -> None:
    with TestClient(parts.app()) as c, caplog.at_level(logging.WARNING):
        r = c.post("/auth/login", json={"username": "admin", "password": "nope-nope-nope"})
        assert r.status_code == 401 and r.json() == {"detail": "wrong username or password"}
        r = c.post("/auth/login", json={"username": "ghost", "password": "nope-nope-nope"})
        assert r.status_code == 401 and r.json() == {"detail": "wrong username or password"}
    assert "failed login for 'admin'" in caplog.text and "nope-nope-nope" not in caplog.text
    actions = [r.action for r in parts.security.audit.records()]
    assert actions.count("login.failed") == 2


def test_failed_logins_are_limited_per_account_and_per_address(parts: Parts) -> None:
    config = AuthConfig(max_failures_per_account=3, max_failures_per_address=5)
    parts.security = Security.open(parts.security.db.path, SCOPE, config)
    _add(parts, "op1", Role.OPERATOR, ["kp1"])
    with TestClient(parts.app()) as c:
        for _ in range(3):
            assert c.post("/auth/login", json={"username": "admin", "password": "x" * 12}).status_code == 401
        # The account is locked for the window, even with the right password.
        r = c.post("/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        # Other accounts still work from this address until the address limit...
        assert c.post("/auth/login", json={"username": "op1", "password": PASSWORD}).status_code == 200
        for _ in range(2):
            c.post("/auth/login", json={"username": "op1", "password": "y" * 12})
        # ...5 failures from one address block every account from it.
        assert c.post("/auth/login", json={"username": "op1", "password": PASSWORD}).status_code == 429
    assert "login.throttled" in {r.action for r in parts.security.audit.records()}


def test_sessions_expire(parts: Parts) -> None:
    parts.security = Security.open(parts.security.db.path, SCOPE, AuthConfig(session_ttl_s=1.5))
    with TestClient(parts.app()) as c:
        login(c)
        assert c.get("/events").status_code == 200
        time.sleep(1.6)  # the cookie (2 s) is still sent; the server ended the session
        assert c.get("/events").status_code == 401


def test_password_change_ends_every_session(parts: Parts) -> None:
    _add(parts, "op1", Role.OPERATOR, ["kp1"])
    app = parts.app()
    with TestClient(app) as first, TestClient(app) as second:
        login(first, "op1", PASSWORD)
        login(second, "op1", PASSWORD)
        r = first.post(
            "/auth/password", json={"current_password": PASSWORD, "new_password": "brand-new-pass-42"}
        )
        assert r.status_code == 204
        assert first.get("/events").status_code == 401 and second.get("/events").status_code == 401
        login(second, "op1", "brand-new-pass-42")
        assert second.get("/events").status_code == 200
        r = second.post(
            "/auth/password", json={"current_password": "brand-new-pass-42", "new_password": "short"}
        )
        assert r.status_code == 400 and "at least" in r.json()["detail"]


def test_cookie_writes_need_the_csrf_token(parts: Parts) -> None:
    parts.store.apply(start(make_event(1)))
    parts.security.review.ingest(start(make_event(1)))
    (item,), _ = parts.security.review.list(None)
    with TestClient(parts.app()) as c:
        login(c)
        token = c.headers.pop("X-CSRF-Token")
        assert c.post(f"/review/items/{item.id}/acknowledge").status_code == 403
        r = c.post(f"/review/items/{item.id}/acknowledge", headers={"X-CSRF-Token": "forged"})
        assert r.status_code == 403
        r = c.post(f"/review/items/{item.id}/acknowledge", headers={"X-CSRF-Token": token})
        assert r.status_code == 200 and r.json()["state"] == "acknowledged"


def test_api_keys_are_hashed_scoped_and_revocable(parts: Parts) -> None:
    parts.store.apply_many([start(make_event(1, camera="cam1")), start(make_event(2, camera="cam2"))])
    with TestClient(parts.app()) as admin:
        login(admin)
        r = admin.post("/api-keys", json={"name": "signage", "role": "viewer", "scopes": ["kp1"]})
        assert r.status_code == 201
        key, key_id = r.json()["key"], r.json()["id"]
        assert admin.post("/api-keys", json={"name": "x", "role": "admin"}).status_code == 400
        assert (
            admin.post("/api-keys", json={"name": "x", "role": "viewer", "scopes": ["kp9"]}).status_code
            == 400
        )
    db = sqlite3.connect(parts.security.db.path)
    assert key.split("_", 2)[2] not in str(db.execute("SELECT * FROM api_keys").fetchall())
    db.close()
    with TestClient(parts.app()) as machine:
        for header in ({"Authorization": f"Bearer {key}"}, {"X-API-Key": key}):
            r = machine.get("/events", headers=header)
            assert r.status_code == 200 and [e["camera"] for e in r.json()["items"]] == ["cam1"]
        assert machine.get("/events/ev002", headers={"X-API-Key": key}).status_code == 404
        bad = machine.get("/events", headers={"X-API-Key": key[:-2] + "xx"})
        assert bad.status_code == 401 and key_id not in bad.text
    with TestClient(parts.app()) as admin:
        login(admin)
        assert admin.delete(f"/api-keys/{key_id}").status_code == 204
    with TestClient(parts.app()) as machine:
        assert machine.get("/events", headers={"X-API-Key": key}).status_code == 401


def test_roles_viewer_reads_operator_acts_admin_manages(parts: Parts) -> None:
    parts.store.apply(start(make_event(1)))
    parts.security.review.ingest(start(make_event(1)))
    (item,), _ = parts.security.review.list(None)
    _add(parts, "view1", Role.VIEWER, ["kp1"])
    _add(parts, "op1", Role.OPERATOR, ["kp1"])
    with TestClient(parts.app()) as c:
        login(c, "view1", PASSWORD)
        assert c.get(f"/review/items/{item.id}").status_code == 200
        assert c.post(f"/review/items/{item.id}/acknowledge").status_code == 403
        assert c.get("/users").status_code == 403 and c.get("/audit").status_code == 403
    with TestClient(parts.app()) as c:
        login(c, "op1", PASSWORD)
        assert c.post(f"/review/items/{item.id}/acknowledge").status_code == 200
        assert (
            c.post("/users", json={"username": "x", "password": PASSWORD, "role": "admin"}).status_code == 403
        )
    with TestClient(parts.app()) as c:
        login(c)
        r = c.post(
            "/users", json={"username": "sup1", "password": PASSWORD, "role": "supervisor", "scopes": ["w1"]}
        )
        assert r.status_code == 201 and r.json()["scopes"] == ["w1"]
        r = c.post("/users", json={"username": "op2", "password": PASSWORD, "role": "operator", "scopes": []})
        assert r.status_code == 400 and "needs at least one" in r.json()["detail"]
        assert c.patch("/users/op1", json={"disabled": True}).status_code == 200
        assert c.patch("/users/admin", json={"role": "viewer", "scopes": ["kp1"]}).status_code == 400
        assert {u["username"]: u["disabled"] for u in c.get("/users").json()}["op1"] is True
    with TestClient(parts.app()) as c:  # disabled: no login
        r = c.post("/auth/login", json={"username": "op1", "password": PASSWORD})
        assert r.status_code == 401


def test_first_start_admin_gets_a_one_time_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ADMIN_PASSWORD_ENV, raising=False)
    security = Security.open(tmp_path / "a.db", ScopeIndex())
    password = security.ensure_admin()
    assert password is not None and len(password) >= 12
    assert security.ensure_admin() is None  # only on the very first start
    admin = security.auth.check_password("admin", password)
    assert admin is not None and admin.role is Role.ADMIN and admin.must_change
    security.close()
    monkeypatch.setenv(ADMIN_PASSWORD_ENV, "from-the-environment-1")
    other = Security.open(tmp_path / "b.db", ScopeIndex())
    assert other.ensure_admin() is None
    assert other.auth.check_password("admin", "from-the-environment-1") is not None
    other.close()


def test_users_and_audit_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = str(tmp_path / "events.db")
    runner = CliRunner()
    monkeypatch.setenv("KHUPHO_PASSWORD", "cli-password-123")
    r = runner.invoke(cli, ["users", "add", "op1", "--role", "operator", "--scope", "kp1", "--db", db])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["users", "add", "op1", "--role", "operator", "--db", db])
    assert r.exit_code == 2 and "exists" in r.output
    r = runner.invoke(cli, ["users", "add", "x", "--role", "boss", "--db", db])
    assert r.exit_code == 2
    assert "op1\toperator\tkp1" in runner.invoke(cli, ["users", "list", "--db", db]).output
    monkeypatch.setenv("KHUPHO_PASSWORD", "cli-password-456")
    assert runner.invoke(cli, ["users", "passwd", "op1", "--db", db]).exit_code == 0
    assert runner.invoke(cli, ["users", "disable", "op1", "--db", db]).exit_code == 0
    assert "disabled" in runner.invoke(cli, ["users", "list", "--db", db]).output
    security = Security.open(db, ScopeIndex())
    assert security.auth.check_password("op1", "cli-password-456") is None  # disabled
    security.auth.update_user("op1", disabled=False)
    assert security.auth.check_password("op1", "cli-password-456") is not None
    security.close()
    r = runner.invoke(cli, ["audit", "verify", "--db", db])
    assert r.exit_code == 0 and "intact: 3 rows" in r.output
    out = tmp_path / "audit.csv"
    assert runner.invoke(cli, ["audit", "export", "--out", str(out), "--db", db]).exit_code == 0
    assert out.read_text().count("\n") == 4 and "user.password_reset" in out.read_text()
