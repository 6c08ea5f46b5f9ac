"""The security tables in the PostgreSQL event database, through the event store's connections.

Using :class:`events.storage.postgres.PostgresEventStore`'s pool keeps one set of connection
settings, one error policy (a psycopg failure becomes :class:`events.storage.store.StorageError`
naming the database without its password, answered 503 by the API; a server that is down fails at
once instead of queueing callers) and one ``pool_size`` for a process. The tables live in the
store's schema (its connections' ``search_path``).

Every write transaction takes a transaction-scoped advisory lock of the schema first, so writers
take turns as they do on SQLite's file (see :mod:`api.auth.db`): two API processes appending to the
audit log at once cannot both read the same chain head. Waiting for it is bounded by
``lock_timeout`` (as SQLite's busy timeout), after which the call fails with ``StorageError``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from psycopg.rows import dict_row

from api.auth.db import Dialect, Params

if TYPE_CHECKING:
    import psycopg

    from events.storage.postgres import PostgresEventStore

# Advisory lock namespace of the security tables' writers ("khus"); the second key is the schema's hash.
_WRITE_LOCK = 0x6B687573
_LOCK_TIMEOUT = "10s"


@functools.lru_cache(maxsize=512)
def to_psycopg(sql: str) -> str:
    """``?`` placeholders as ``%s`` and a literal ``%`` as ``%%``, outside quoted strings."""
    out: list[str] = []
    quoted = False
    for ch in sql:
        if ch == "'":
            quoted = not quoted
        if ch == "%":
            out.append("%%")
        elif ch == "?" and not quoted:
            out.append("%s")
        else:
            out.append(ch)
    return "".join(out)


def _values(params: Params) -> list[Any]:
    # SQLite stores a bool as 0/1; the flag columns are integers in both schemas.
    return [int(p) if isinstance(p, bool) else p for p in params]


class _Transaction:
    """The statements of one transaction, written with ``?`` placeholders."""

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        cursor.row_factory = dict_row
        self._cur = cursor

    def execute(self, sql: str, params: Params = ()) -> psycopg.Cursor[dict[str, Any]]:
        if params:
            self._cur.execute(to_psycopg(sql), _values(params))
        else:  # sent as written: a migration's statements (a trigger's body may hold a '%')
            self._cur.execute(sql)
        return self._cur


class PostgresSecurityDb:
    dialect: Dialect = "postgres"

    def __init__(self, store: PostgresEventStore, *, close_store: bool = False) -> None:
        """``close_store``: :meth:`close` closes the event store too (a command that opened it for this)."""
        from api.auth.migrations import migrate

        self._store = store
        self._close_store = close_store
        self.name = store.name
        self._lock_key = store.schema
        migrate(self)

    @contextmanager
    def tx(self) -> Iterator[_Transaction]:
        with self._store.transaction() as cur:
            cur.execute(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'")
            cur.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_WRITE_LOCK, self._lock_key))
            yield _Transaction(cur)

    def read(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        # One statement in autocommit, without transaction() and its BEGIN/COMMIT round trips (a read
        # runs on every request: the session check).
        with self._store._connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(to_psycopg(sql), _values(params))
            return cur.fetchall()

    def close(self) -> None:
        if self._close_store:
            self._store.close()
