"""The service's database for the security tables (accounts, sessions, API keys, audit, review, reports).

Two backends behind one small interface, :class:`SecurityDb`: SQLite (the event database's file,
a second connection in WAL mode) and PostgreSQL (the event database too, through the event
store's connections: ``api.auth.db_postgres``). The stores write their SQL once, in the dialect
both accept: ``?`` placeholders (the PostgreSQL backend turns them into psycopg's ``%s``), rows read
by column name, integers for flags, ``ON CONFLICT DO NOTHING`` and ``RETURNING``. What the dialects
do not share is the schema, in the numbered files of ``api/auth/migrations/<dialect>/``, applied
when a database is opened (:mod:`api.auth.migrations`).

Writes are serialized on both backends: SQLite's ``BEGIN IMMEDIATE`` takes the file's write lock,
and a PostgreSQL write transaction first takes an advisory lock of the schema. A read-then-write
in one transaction (the audit chain's head, a review item's next ``seq``, a name not yet taken)
therefore sees no other writer in between, whichever process or host it runs in.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Literal, Protocol

Dialect = Literal["sqlite", "postgres"]
Params = Sequence[Any]


class Cursor(Protocol):
    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    @property
    def rowcount(self) -> int: ...


class Transaction(Protocol):
    """What ``SecurityDb.tx()`` lends: statements of one transaction."""

    def execute(self, sql: str, params: Params = ()) -> Cursor: ...


class SecurityDb(Protocol):
    dialect: Dialect
    name: str  # for messages: the file or the server and database, never a password

    def tx(self) -> AbstractContextManager[Transaction]:
        """One write transaction (serialized with every other writer of the database)."""
        ...

    def read(self, sql: str, params: Params = ()) -> list[Any]:
        """The rows of one query (``sqlite3.Row`` or dicts: read them by column name)."""
        ...

    def close(self) -> None: ...


class SqliteSecurityDb:
    """A locked connection to the SQLite file; ``tx()`` is one ``BEGIN IMMEDIATE`` transaction."""

    dialect: Dialect = "sqlite"

    def __init__(self, path: str | Path) -> None:
        from api.auth.migrations import migrate

        self.path = Path(path)
        self.name = str(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(
            str(self.path), check_same_thread=False, isolation_level=None, timeout=10
        )
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self.lock = threading.RLock()
        migrate(self)

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def read(self, sql: str, params: Params | Mapping[str, Any] = ()) -> list[sqlite3.Row]:
        with self.lock:
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        with self.lock:
            self._conn.close()


def open_security_db(database: Any, store: Any = None) -> SecurityDb:
    """The security tables in the configured event database: the SQLite file ``database.path``, or the
    PostgreSQL database, through the connections of ``store`` (the service's opened
    :class:`events.storage.postgres.PostgresEventStore` of that config) or, without one (a command),
    of an event store opened here and closed with the returned database."""
    path = getattr(database, "path", None)
    if path is not None:
        return SqliteSecurityDb(path)
    from api.auth.db_postgres import PostgresSecurityDb

    if store is not None:
        return PostgresSecurityDb(store)
    from events.storage.config import open_event_store

    own = open_event_store(database)
    try:
        return PostgresSecurityDb(own, close_store=True)  # type: ignore[arg-type]
    except BaseException:
        own.close()
        raise
