"""The security tables' two backends for the store-level tests: a SQLite file, or a schema of its own on
the session's PostgreSQL server (``tests.conftest_pg``), reached through an event store's connections
as the service does."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

from api.auth.db import SecurityDb, SqliteSecurityDb
from api.auth.db_postgres import PostgresSecurityDb
from events.storage.postgres import PostgresEventStore
from tests.conftest_pg import PgServer

BACKENDS = ["sqlite", "postgres"]


class SecurityBackend:
    """Makes security databases of one backend and cleans them up (``close``)."""

    def __init__(self, kind: str, folder: Path, server: PgServer | None) -> None:
        self.kind = kind
        self.folder = folder
        self.server = server
        self._opened: list[Any] = []
        self._schemas: list[str] = []

    def new(self) -> SecurityDb:
        """An empty database."""
        if self.server is None:
            return self._keep(SqliteSecurityDb(self.folder / f"{uuid.uuid4().hex[:8]}.db"))
        schema = f"s_{uuid.uuid4().hex[:16]}"
        self._schemas.append(schema)
        return self._open_pg(schema)

    def again(self, db: SecurityDb) -> SecurityDb:
        """Another connection to ``db``'s database, as a second API process would have."""
        if isinstance(db, SqliteSecurityDb):
            return self._keep(SqliteSecurityDb(db.path))
        return self._open_pg(self._schema_of(db))

    def event_store(self, db: SecurityDb) -> Any:
        """The event store whose connections a PostgreSQL ``db`` uses (None for SQLite)."""
        return getattr(db, "_store", None)

    def tamper(self, db: SecurityDb, sql: str) -> None:
        """What the database's owner could do: switch the audit triggers off, then change history."""
        if isinstance(db, SqliteSecurityDb):
            conn = sqlite3.connect(db.path)
            conn.executescript(f"DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete; {sql}")
            conn.close()
            return
        assert self.server is not None
        with self.server.connect() as conn, conn.transaction():
            conn.execute(f"SET LOCAL search_path = {self._schema_of(db)}")
            conn.execute("ALTER TABLE audit DISABLE TRIGGER USER")
            conn.execute(sql)
            conn.execute("ALTER TABLE audit ENABLE TRIGGER USER")

    def raw(self, db: SecurityDb, sql: str) -> None:
        """One statement on a connection of its own (not through khupho)."""
        if isinstance(db, SqliteSecurityDb):
            conn = sqlite3.connect(db.path, isolation_level=None)  # autocommit
            try:
                conn.execute(sql)
            finally:
                conn.close()
            return
        assert self.server is not None
        with self.server.connect() as conn:
            conn.execute(f"SET search_path = {self._schema_of(db)}")
            conn.execute(sql)

    def close(self) -> None:
        for opened in reversed(self._opened):
            opened.close()
        if self.server is not None and self._schemas:
            with self.server.connect() as conn:
                for schema in self._schemas:
                    conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

    def _open_pg(self, schema: str) -> SecurityDb:
        assert self.server is not None
        store = PostgresEventStore(**self.server.store_options(), schema=schema, pool_size=3)  # type: ignore[arg-type]
        return self._keep(PostgresSecurityDb(store, close_store=True))

    def _keep(self, db: SecurityDb) -> SecurityDb:
        self._opened.append(db)
        return db

    @staticmethod
    def _schema_of(db: SecurityDb) -> str:
        assert isinstance(db, PostgresSecurityDb)
        return db._store.schema
