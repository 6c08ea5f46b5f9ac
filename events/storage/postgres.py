"""The PostgreSQL event store: the SQLite store's schema and semantics on a server, for several hosts.

Layout (the numbered files in ``migrations/postgres/``, the same versions as SQLite's, applied at
start-up and recorded in ``schema_migrations``): ``events`` with ``phase_rank`` (a transition only
replaces the row when its phase is at least the stored one), ``event_classes`` for the class filter,
``snapshots``, ``clips``, ``locks``, per-minute ``traffic`` and ``applied_batches`` (a writer batch
replayed or retried is skipped whole, so traffic is never counted twice); ``feed_seq`` numbers each
stored transition for the live feed shared by several processes (``pg_feed.py``). Times are integer
microseconds since the epoch and ids sort bytewise, so pages, cursors and traffic buckets are exactly
SQLite's.

Several khupho processes may start against one database at once: each migration runs under a
transaction-scoped advisory lock and re-checks what is applied.

Connections: a few (``pool_size``), each used by one thread at a time; an idle connection the server
has closed (a restart) is dropped before use. While the server cannot be reached, calls fail at
once with :class:`StorageError` (a new connection is tried after a backoff of at most a second)
rather than waiting: the event writer (``pipeline.sink``) keeps its batch and retries, the API
answers 503, and nobody queues behind a database that is down. ``psycopg_pool`` was not used
because its callers wait for its timeout while the server is down.
"""

from __future__ import annotations

import re
import select
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, tzinfo
from typing import Any, Protocol

import psycopg
from psycopg.types.json import Jsonb

from events.model import Event, EventTransition, EventType, Phase, TrafficCount
from events.storage.migrations import latest, migrations
from events.storage.pg_feed_payload import feed_body, feed_channel
from events.storage.store import (
    EventFilters,
    StorageError,
    TrafficBucket,
    TrafficRow,
    decode_cursor,
    encode_cursor,
    from_epoch_us,
    to_epoch_us,
)
from events.storage.traffic_buckets import MINUTE_US, check_bucket, regroup, step_us

_PHASE_RANK = {Phase.START: 0, Phase.UPDATE: 1, Phase.END: 2}

# Advisory lock namespace for schema migrations ("khup" in ASCII); the second key is the schema's hash.
_MIGRATION_LOCK = 0x6B687570

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# One statement per transition, so a batch goes to the server in one pipelined round trip: the upsert
# (skipped for an older phase than the stored one), then the event's class index follows it (classes
# it no longer has go, new ones come; nothing happens when the upsert was skipped). Each stored
# transition gives the row a new feed_seq (the live feed's change number, pg_feed.py), drawn after the
# row lock is held, so one event's numbers grow in the order its transitions commit.
_UPSERT_EVENT = """
WITH up AS (
    INSERT INTO events (id, camera, rule, type, classes, track_ids, start_pts, end_pts,
                        start_us, end_us, active, score, snapshot, data, phase_rank, feed_seq)
    VALUES (%(id)s, %(camera)s, %(rule)s, %(type)s, %(classes)s, %(track_ids)s, %(start_pts)s,
            %(end_pts)s, %(start_us)s, %(end_us)s, %(active)s, %(score)s, %(snapshot)s, %(data)s,
            %(phase_rank)s, nextval('events_feed_seq'))
    ON CONFLICT (id) DO UPDATE SET
        camera = excluded.camera, rule = excluded.rule, type = excluded.type,
        classes = excluded.classes, track_ids = excluded.track_ids,
        start_pts = excluded.start_pts, end_pts = excluded.end_pts,
        start_us = excluded.start_us, end_us = excluded.end_us, active = excluded.active,
        score = excluded.score, snapshot = excluded.snapshot, data = excluded.data,
        phase_rank = excluded.phase_rank, feed_seq = nextval('events_feed_seq')
    WHERE excluded.phase_rank >= events.phase_rank
    RETURNING id, start_us, feed_seq
), gone AS (
    DELETE FROM event_classes c USING up
    WHERE c.event_id = up.id AND (c.start_us <> up.start_us OR NOT c.class_name = ANY(%(class_index)s))
)"""
_INDEX_CLASSES = """
INSERT INTO event_classes (class_name, start_us, event_id)
SELECT name, up.start_us, up.id FROM up CROSS JOIN unnest(%(class_index)s::text[]) AS name
ON CONFLICT DO NOTHING
"""
_UPSERT = _UPSERT_EVENT + _INDEX_CLASSES
# With the live feed on: the same, and a notification of what was stored (none when skipped), sent by
# the server at commit (pg_feed_payload.py has its format).
_UPSERT_NOTIFY = (
    _UPSERT_EVENT
    + ", indexed AS ("
    + _INDEX_CLASSES
    + ")\nSELECT pg_notify(%(channel)s, up.feed_seq::text || ':' || %(feed)s::text) FROM up"
)

_ADD_TRAFFIC = (
    "INSERT INTO traffic (camera, line, minute_us, class_name, direction, count) "
    "VALUES (%s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (camera, line, minute_us, class_name, direction) "
    "DO UPDATE SET count = traffic.count + excluded.count"
)

_SELECT = """
SELECT e.id, e.camera, e.rule, e.type, e.classes, e.track_ids, e.start_pts, e.end_pts,
       e.start_us, e.end_us, e.active, e.score, e.snapshot, e.data,
       s.key AS snap_key, s.score AS snap_score, v.key AS clip_key, l.event_id IS NOT NULL AS locked
"""
_JOINS = (
    " LEFT JOIN snapshots s ON s.event_id = e.id LEFT JOIN clips v ON v.event_id = e.id"
    " LEFT JOIN locks l ON l.event_id = e.id"
)


class BatchFence(Protocol):
    """Checks, inside a batch's transaction, that its writer may still write; raises if not."""

    def __call__(self, cursor: psycopg.Cursor[Any], /) -> None: ...


_BACKOFF_MIN_S = 0.25
_BACKOFF_MAX_S = 1.0  # the writer retries on its own schedule; this only spares other callers


class _Connections:
    """At most ``size`` open connections, each lent to one caller at a time.

    Idle connections are kept for reuse; one the server closed while it sat idle (a restart
    sends a termination notice, a crash closes the socket) is readable and is dropped before it
    is lent. A failed connect starts a backoff during which callers fail at once.
    """

    def __init__(
        self, connect: Callable[[], psycopg.Connection[Any]], size: int, wait_s: float, name: str
    ) -> None:
        self._connect = connect
        self._size = size
        self._wait_s = wait_s
        self._name = name
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._idle: list[psycopg.Connection[Any]] = []
        self._closed = False
        self._retry_at = 0.0
        self._backoff = 0.0
        self._last_failure = ""

    @contextmanager
    def lend(self) -> Iterator[psycopg.Connection[Any]]:
        if not self._slots.acquire(timeout=self._wait_s):
            raise StorageError(f"event database {self._name}: all {self._size} connections busy")
        try:
            conn = self._take()
            try:
                yield conn
            finally:
                self._give_back(conn)
        finally:
            self._slots.release()

    def _take(self) -> psycopg.Connection[Any]:
        with self._lock:
            if self._closed:
                raise StorageError(f"event database {self._name}: the store is closed")
            while self._idle:
                conn = self._idle.pop()
                if _usable(conn):
                    return conn
                _close_quietly(conn)
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                raise StorageError(f"{self._last_failure}; next attempt in {wait:.1f} s")
        try:
            conn = self._connect()
        except StorageError as exc:
            with self._lock:
                self._backoff = min(max(self._backoff * 2, _BACKOFF_MIN_S), _BACKOFF_MAX_S)
                self._retry_at = time.monotonic() + self._backoff
                self._last_failure = str(exc)
            raise
        with self._lock:
            self._backoff = 0.0
            self._retry_at = 0.0
        return conn

    def _give_back(self, conn: psycopg.Connection[Any]) -> None:
        keep = (
            not conn.closed
            and not conn.broken
            and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        )
        with self._lock:
            if keep and not self._closed:
                self._idle.append(conn)
                return
        _close_quietly(conn)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            _close_quietly(conn)


def _usable(conn: psycopg.Connection[Any]) -> bool:
    """False for a connection that is closed or that the server wrote to while it sat idle."""
    if conn.closed or conn.broken:
        return False
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError, psycopg.Error):
        return False
    return not readable


def _close_quietly(conn: psycopg.Connection[Any]) -> None:
    with suppress(Exception):  # already broken: nothing more to release
        conn.close()


class PostgresEventStore:
    """:class:`events.storage.store.EventStore` on a PostgreSQL database (12 or newer; tested on 15).

    ``schema`` puts khupho's tables in their own schema (created if missing), e.g. to share a
    database; the default is ``public``. ``notify_feed``: notify each stored transition on the live
    feed's channel of the schema, for :class:`events.storage.pg_feed.PgFeedListener` in other
    processes (every writer of a database whose feed is listened to should have it on).
    """

    def __init__(
        self,
        *,
        host: str,
        port: int = 5432,
        dbname: str = "khupho",
        user: str = "khupho",
        password: str | None = None,
        sslmode: str = "prefer",
        pool_size: int = 4,
        connect_timeout_s: int = 5,
        schema: str = "public",
        notify_feed: bool = False,
    ) -> None:
        if not _SCHEMA_NAME.match(schema):
            raise ValueError(f"schema must be a lower-case SQL identifier, got {schema!r}")
        self.name = f"{host}:{port}/{dbname}" + ("" if schema == "public" else f" (schema {schema})")
        self.schema = schema
        self.notify_feed = notify_feed
        self.feed_channel = feed_channel(schema)
        self._password = password
        params: dict[str, Any] = {
            "host": host,
            "port": port,
            "dbname": dbname,
            "user": user,
            "sslmode": sslmode,
            "connect_timeout": connect_timeout_s,
            # Notice a server that vanished without closing the socket (a host down, a cable pulled).
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
            "options": f"-c search_path={schema}",
        }
        if password is not None:
            params["password"] = password

        def connect(application_name: str = "khupho") -> psycopg.Connection[Any]:
            try:
                # autocommit: a read is one statement; writes open ``conn.transaction()`` themselves.
                return psycopg.connect(autocommit=True, **{**params, "application_name": application_name})
            except psycopg.Error as exc:
                message = self._scrub(str(exc).strip())
            raise StorageError(f"cannot connect to event database {self.name}: {message}")

        self._connect = connect
        self._pool = _Connections(connect, pool_size, float(connect_timeout_s) * 2, self.name)
        try:
            self._migrate()
        except BaseException:
            self._pool.close()
            raise

    def __repr__(self) -> str:
        return f"PostgresEventStore({self.name!r})"

    def _scrub(self, message: str) -> str:
        """The message on one line, without the password should a server or driver ever echo it."""
        message = " ".join(message.split())
        if self._password:
            message = message.replace(self._password, "***")
        return message

    def scrub(self, message: str) -> str:
        """``message`` fit for a log line: one line, never the password."""
        return self._scrub(message)

    def dedicated_connection(self, application_name: str) -> psycopg.Connection[Any]:
        """A new autocommit connection outside the pool, for a caller that keeps it (the live feed's
        LISTEN) and closes it, named in ``pg_stat_activity`` by ``application_name``;
        :class:`StorageError` naming the database when it cannot connect."""
        return self._connect(application_name)

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Cursor[Any]]:
        """A cursor in one transaction, for tables beside the events' (cluster leases); psycopg
        failures become :class:`StorageError` naming the database."""
        with self._connection() as conn, conn.transaction(), conn.cursor() as cur:
            yield cur

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection, with every psycopg failure turned into StorageError naming the database."""
        with self._pool.lend() as conn:
            try:
                yield conn
                return
            except psycopg.Error as exc:
                message = self._scrub(str(exc).strip() or type(exc).__name__)
        # Outside ``except`` and ``from None``: a traceback shows this message only, not the driver's
        # exception (and anything it holds).
        raise StorageError(f"event database {self.name}: {message}") from None

    def _migrate(self) -> None:
        lock = "SELECT pg_advisory_xact_lock(%s, hashtext(%s))"
        with self._connection() as conn:
            with conn.transaction():
                conn.execute(lock, (_MIGRATION_LOCK, self.schema))
                # Only when missing: CREATE SCHEMA needs the CREATE right on the database even
                # with IF NOT EXISTS, and a khupho user may have been given just its schema.
                if (
                    conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,)).fetchone()
                    is None
                ):
                    conn.execute(f"CREATE SCHEMA {self.schema}")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations "
                    "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_us BIGINT NOT NULL)"
                )
                applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            known = latest("postgres")
            if applied and max(applied) > known:
                newest = max(applied)
            else:
                newest = 0
                for migration in migrations("postgres"):
                    if migration.version in applied:
                        continue
                    with conn.transaction():
                        # Another khupho starting at the same moment may have applied it meanwhile.
                        conn.execute(lock, (_MIGRATION_LOCK, self.schema))
                        done = conn.execute(
                            "SELECT 1 FROM schema_migrations WHERE version = %s", (migration.version,)
                        ).fetchone()
                        if done is not None:
                            continue
                        for statement in migration.statements:
                            conn.execute(statement)
                        conn.execute(
                            "INSERT INTO schema_migrations VALUES (%s, %s, %s)",
                            (migration.version, migration.name, _now_us()),
                        )
        if newest:
            raise StorageError(
                f"event database {self.name} has schema version {newest}, newer than this "
                f"khupho's {known}: upgrade khupho or use another database"
            )

    @property
    def schema_version(self) -> int:
        with self._connection() as conn:
            row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        return int(row[0]) if row else 0

    # -- writes ---------------------------------------------------------------

    def apply(self, transition: EventTransition) -> None:
        self.apply_many((transition,))

    def apply_many(self, transitions: Iterable[EventTransition]) -> None:
        self.apply_batch(transitions, ())

    def apply_batch(
        self,
        transitions: Iterable[EventTransition],
        traffic: Iterable[TrafficCount],
        *,
        batch_id: str | None = None,
        fence: BatchFence | None = None,
    ) -> bool:
        """``fence`` runs first inside the batch's transaction and raises to refuse the whole batch
        (cluster mode: a camera's writer whose lease has moved to another node)."""
        # Validated (and the feed's payloads made) before borrowing a connection.
        if self.notify_feed:
            rows = [{**_row(t), "channel": self.feed_channel, "feed": feed_body(t)} for t in transitions]
        else:
            rows = [_row(t) for t in transitions]
        counts = _traffic_rows(traffic)
        if not rows and not counts and batch_id is None:
            return True
        with self._connection() as conn, conn.transaction(), conn.cursor() as cur:
            if fence is not None:
                fence(cur)
            if batch_id is not None:
                # ON CONFLICT: a second writer with the same batch waits for the first, then skips.
                cur.execute(
                    "INSERT INTO applied_batches VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    (batch_id, _now_us()),
                )
                if cur.rowcount == 0:
                    return False
            if rows and self.notify_feed:
                with conn.pipeline():
                    if batch_id is None:
                        # The transaction gets its id before its first feed_seq (the batch's row
                        # above gave it one otherwise): the listener's watermark relies on it.
                        cur.execute("SELECT txid_current()")
                    cur.executemany(_UPSERT_NOTIFY, rows)
            elif rows:
                cur.executemany(_UPSERT, rows)  # pipelined: one round trip for the batch
            if counts:
                cur.executemany(_ADD_TRAFFIC, counts)
        return True

    def forget_batches(self, before: datetime) -> int:
        with self._connection() as conn:
            return conn.execute(
                "DELETE FROM applied_batches WHERE applied_us < %s", (to_epoch_us(before),)
            ).rowcount

    def set_snapshot(self, event_id: str, key: str, score: float) -> None:
        with self._connection() as conn:
            conn.execute(
                "INSERT INTO snapshots (event_id, key, score) VALUES (%s, %s, %s) "
                "ON CONFLICT (event_id) DO UPDATE SET key = excluded.key, score = excluded.score",
                (event_id, key, float(score)),
            )

    def add_traffic(self, counts: Iterable[TrafficCount]) -> None:
        self.apply_batch((), counts)

    def set_clip(self, event_id: str, key: str) -> None:
        with self._connection() as conn:
            conn.execute(
                "INSERT INTO clips (event_id, key) VALUES (%s, %s) "
                "ON CONFLICT (event_id) DO UPDATE SET key = excluded.key",
                (event_id, key),
            )

    def set_locked(self, event_id: str, locked: bool) -> bool:
        with self._connection() as conn, conn.transaction():
            # FOR UPDATE: a purge deleting this event at the same moment goes first or waits.
            if conn.execute("SELECT 1 FROM events WHERE id = %s FOR UPDATE", (event_id,)).fetchone() is None:
                return False
            if locked:
                conn.execute(
                    "INSERT INTO locks (event_id, locked_us) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    (event_id, _now_us()),
                )
            else:
                conn.execute("DELETE FROM locks WHERE event_id = %s", (event_id,))
            return True

    def clear_media(self, event_id: str) -> None:
        with self._connection() as conn, conn.transaction():
            conn.execute("DELETE FROM snapshots WHERE event_id = %s", (event_id,))
            conn.execute("DELETE FROM clips WHERE event_id = %s", (event_id,))
            conn.execute("UPDATE events SET snapshot = NULL WHERE id = %s", (event_id,))

    def delete_events(self, event_ids: Sequence[str]) -> int:
        ids = list(event_ids)
        if not ids:
            return 0
        with self._connection() as conn, conn.transaction():
            deleted = conn.execute(
                "DELETE FROM events WHERE id = ANY(%s) "
                "AND NOT EXISTS (SELECT 1 FROM locks l WHERE l.event_id = events.id)",
                (ids,),
            ).rowcount
            # Then the rows that hang off an event whose row is gone (also a late snapshot's), never
            # those of a kept (locked) event.
            for table in ("event_classes", "snapshots", "clips"):
                conn.execute(
                    f"DELETE FROM {table} t WHERE t.event_id = ANY(%s) "
                    "AND NOT EXISTS (SELECT 1 FROM events e WHERE e.id = t.event_id) "
                    "AND NOT EXISTS (SELECT 1 FROM locks l WHERE l.event_id = t.event_id)",
                    (ids,),
                )
            return deleted

    def delete_traffic(self, before: datetime, camera: str | None = None) -> int:
        sql, params = "DELETE FROM traffic WHERE minute_us < %s", [to_epoch_us(before)]
        if camera is not None:
            sql += " AND camera = %s"
            params.append(camera)
        with self._connection() as conn:
            return conn.execute(sql, params).rowcount

    # -- reads ----------------------------------------------------------------

    def _events(self, sql: str, params: Sequence[Any] = ()) -> list[Event]:
        with self._connection() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [_event(r) for r in rows]

    def get(self, event_id: str) -> Event | None:
        found = self._events(_SELECT + " FROM events e" + _JOINS + " WHERE e.id = %s", (event_id,))
        return found[0] if found else None

    def open_events(self, camera: str | None = None) -> list[Event]:
        where, params = ("e.active", ()) if camera is None else ("e.active AND e.camera = %s", (camera,))
        return self._events(
            _SELECT + " FROM events e" + _JOINS + f" WHERE {where} ORDER BY e.start_us, e.id", params
        )

    def expired(
        self,
        before: datetime,
        *,
        camera: str | None = None,
        types: Sequence[EventType] | None = None,
        limit: int = 500,
    ) -> list[Event]:
        where = ["NOT e.active", "e.end_us < %s", "l.event_id IS NULL"]
        params: list[Any] = [to_epoch_us(before)]
        if camera is not None:
            where.append("e.camera = %s")
            params.append(camera)
        if types is not None:
            where.append("e.type = ANY(%s)")
            params.append([str(EventType(t)) for t in types])
        sql = f"{_SELECT} FROM events e{_JOINS} WHERE {' AND '.join(where)} ORDER BY e.end_us, e.id LIMIT %s"
        return self._events(sql, [*params, limit])

    def oldest_with_media(self, limit: int = 100) -> list[Event]:
        sql = (
            f"{_SELECT} FROM events e{_JOINS} WHERE NOT e.active AND l.event_id IS NULL"
            " AND (s.key IS NOT NULL OR v.key IS NOT NULL OR e.snapshot IS NOT NULL)"
            " ORDER BY e.end_us, e.id LIMIT %s"
        )
        return self._events(sql, (limit,))

    @staticmethod
    def _query(filters: EventFilters) -> tuple[str, list[str], list[Any], str, str]:
        """FROM clause, WHERE terms, parameters and the two columns of the page key."""
        where: list[str] = []
        params: list[Any] = []
        if filters.class_name is not None:
            # Walk the class index in page order; the join fetches the event itself.
            source = "event_classes c JOIN events e ON e.id = c.event_id"
            key_us, key_id = "c.start_us", "c.event_id"
            where.append("c.class_name = %s")
            params.append(filters.class_name)
        else:
            source = "events e"
            key_us, key_id = "e.start_us", "e.id"
        if filters.camera is not None:
            where.append("e.camera = %s")
            params.append(filters.camera)
        if filters.type is not None:
            where.append("e.type = %s")
            params.append(str(EventType(filters.type)))
        if filters.active is not None:
            where.append("e.active = %s")
            params.append(bool(filters.active))
        if filters.since is not None:
            where.append(f"{key_us} >= %s")
            params.append(to_epoch_us(filters.since))
        if filters.until is not None:
            where.append(f"{key_us} < %s")
            params.append(to_epoch_us(filters.until))
        return source, where, params, key_us, key_id

    def list_events(
        self, filters: EventFilters | None = None, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[Event], str | None]:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        source, where, params, key_us, key_id = self._query(filters or EventFilters())
        if cursor is not None:
            after_us, after_id = decode_cursor(cursor)
            where.append(f"({key_us}, {key_id}) < (%s, %s)")
            params.extend((after_us, after_id))
        sql = (
            f"{_SELECT} FROM {source}{_JOINS}"
            f"{' WHERE ' + ' AND '.join(where) if where else ''}"
            f" ORDER BY {key_us} DESC, {key_id} DESC LIMIT %s"
        )
        params.append(limit + 1)  # one extra row tells whether a next page exists
        rows = self._events(sql, params)
        events = rows[:limit]
        next_cursor = None
        if len(rows) > limit:
            last = events[-1]
            next_cursor = encode_cursor(last.start_time, last.id)
        return events, next_cursor

    def count_events(self, filters: EventFilters | None = None) -> int:
        source, where, params, _, _ = self._query(filters or EventFilters())
        sql = f"SELECT COUNT(*) FROM {source}{' WHERE ' + ' AND '.join(where) if where else ''}"
        with self._connection() as conn:
            row = conn.execute(sql, params).fetchone()
        return int(row[0]) if row else 0

    def traffic(
        self,
        camera: str | None = None,
        line: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        bucket: TrafficBucket = "minute",
        tz: tzinfo = UTC,
    ) -> list[TrafficRow]:
        check_bucket(bucket)
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("camera", camera), ("line", line)):
            if value is not None:
                where.append(f"{column} = %s")
                params.append(value)
        if since is not None:
            where.append("minute_us >= %s")
            params.append(to_epoch_us(since))
        if until is not None:
            where.append("minute_us < %s")
            params.append(to_epoch_us(until))
        step = step_us(bucket)
        sql = (
            # "%%": the modulo, escaped from psycopg's placeholders.
            f"SELECT minute_us - (minute_us %% {step}) AS t, camera, line, class_name, direction, SUM(count) "
            f"FROM traffic{' WHERE ' + ' AND '.join(where) if where else ''} "
            "GROUP BY t, camera, line, class_name, direction ORDER BY t"
        )
        with self._connection() as conn:
            rows = conn.execute(sql, params).fetchall()
        return regroup(rows, bucket, tz)

    def close(self) -> None:
        self._pool.close()


def _row(transition: EventTransition) -> dict[str, Any]:
    event = transition.event
    doc = event.model_dump(mode="json", include={"data"})
    row = {
        "id": event.id,
        "camera": event.camera,
        "rule": event.rule,
        "type": str(event.type),
        "classes": list(event.classes),
        "track_ids": [int(t) for t in event.track_ids],
        "start_pts": event.start_pts,
        "end_pts": event.end_pts,
        "start_us": to_epoch_us(event.start_time),
        "end_us": None if event.end_time is None else to_epoch_us(event.end_time),
        "active": bool(event.active),
        "score": event.score,
        "snapshot": event.snapshot,
        "data": Jsonb(doc["data"]),
        "phase_rank": _PHASE_RANK[transition.phase],
        "class_index": sorted(set(event.classes)),
    }
    return row


def _event(row: Sequence[Any]) -> Event:
    (
        id_,
        camera,
        rule,
        type_,
        classes,
        track_ids,
        start_pts,
        end_pts,
        start_us,
        end_us,
        active,
        score,
        snapshot,
        data,
        snap_key,
        snap_score,
        clip_key,
        locked,
    ) = row
    return Event(
        id=id_,
        camera=camera,
        rule=rule,
        type=EventType(type_),
        classes=list(classes),
        track_ids=list(track_ids),
        start_pts=start_pts,
        end_pts=end_pts,
        start_time=from_epoch_us(start_us),
        end_time=None if end_us is None else from_epoch_us(end_us),
        active=bool(active),
        score=score if snap_key is None else snap_score,
        snapshot=snapshot if snap_key is None else snap_key,
        clip=clip_key,
        locked=bool(locked),
        data=data,
    )


def _traffic_rows(counts: Iterable[TrafficCount]) -> list[tuple[str, str, int, str, str, int]]:
    rows = []
    for c in counts:
        minute = to_epoch_us(c.minute)
        rows.append((c.camera, c.line, minute - minute % MINUTE_US, c.class_name, c.direction, c.count))
    return rows


def _now_us() -> int:
    return to_epoch_us(datetime.now(UTC))
