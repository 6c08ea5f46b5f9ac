"""The security tables' schema: numbered SQL files per dialect, applied when a database is opened.

The same scheme as the event store's (``events/storage/migrations``): ``<dialect>/NNNN_name.sql``
holds version NNNN, versions run in order, applied ones are recorded, and a database written by a
newer khupho (a version unknown here) is refused. It is a series of its own, recorded in
``security_migrations``, because these tables belong to the API (the event store knows nothing of
accounts or reports) and their triggers have bodies with ``;`` inside, which the event store's
statement splitter would cut. All pending versions run in one write transaction, so several khupho
processes starting at once apply each version once, and a crash leaves the schema as it was.

The SQLite files use ``IF NOT EXISTS`` throughout: a database from before these migrations (when
each store created its own tables) already holds versions 1-4 and is only recorded.
"""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING

from events.storage.migrations import Migration, read_migrations
from events.storage.store import StorageError

if TYPE_CHECKING:
    from api.auth.db import Dialect, SecurityDb


def _sqlite_statements(text: str) -> tuple[str, ...]:
    """Statements cut at the ``;`` that ends one (``sqlite3.complete_statement`` knows a trigger's
    body from its end)."""
    found, pending = [], ""
    for piece in text.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                found.append(pending.strip())
            pending = ""
    return tuple(found)


def migrations(dialect: Dialect) -> list[Migration]:
    """The migrations shipped for ``dialect``, oldest first. A PostgreSQL file is sent whole (the
    server runs its statements in order)."""
    split = _sqlite_statements if dialect == "sqlite" else _whole
    return read_migrations(__package__, dialect, split, series="security ")


def _whole(text: str) -> tuple[str, ...]:
    return (text.strip(),)


def latest(dialect: Dialect) -> int:
    return migrations(dialect)[-1].version


def migrate(db: SecurityDb) -> int:
    """Apply what ``db`` lacks; returns its schema version."""
    pending = migrations(db.dialect)
    known = pending[-1].version
    with db.tx() as c:
        c.execute(
            "CREATE TABLE IF NOT EXISTS security_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_us BIGINT NOT NULL)"
        )
        applied = {r["version"] for r in c.execute("SELECT version FROM security_migrations").fetchall()}
        if applied and max(applied) > known:
            newest = max(applied)
        else:
            newest = 0
            for migration in pending:
                if migration.version in applied:
                    continue
                for statement in migration.statements:
                    c.execute(statement)
                c.execute(
                    "INSERT INTO security_migrations (version, name, applied_us) VALUES (?, ?, ?)",
                    (migration.version, migration.name, int(time.time() * 1_000_000)),
                )
    if newest:
        # Outside the transaction: nothing was applied.
        raise StorageError(
            f"security tables in {db.name} have schema version {newest}, newer than this khupho's "
            f"{known}: upgrade khupho or use another database"
        )
    return known
