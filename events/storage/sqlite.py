"""The SQLite event store: one file, WAL, keyset pagination, a join table for the class filter.

Layout (the numbered files in ``migrations/sqlite/``, applied at start-up and recorded in
``schema_migrations``):

- ``events``: one row per event; times as integer microseconds since the epoch
  (UTC) so ordering and cursor comparison are exact; lists and ``data`` as JSON.
  ``phase_rank`` (start 0, update 1, end 2) makes replays and late arrivals
  harmless: a transition only replaces the row when its phase is at least the
  stored one, so a stray ``start`` cannot reopen an ended event.
- ``event_classes``: ``(class_name, start_us, event_id)``; the class filter walks
  this index in page order instead of scanning JSON arrays.
- ``snapshots``: the best snapshot's key and score, apart from ``events`` so a
  transition (which does not know the key) never erases it, and so a snapshot
  may arrive before its event.
- ``traffic``: per-minute counts, upserted with ``count = count + n``.
- ``clips``: the event's MP4 clip key; ``locks``: evidence locks (never purged).

One connection guarded by a lock: writes are small batches and reads are
indexed pages, so contention is negligible at camera scale, and SQLite's
single writer rule would serialise writers anyway.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from events.model import Event, EventTransition, EventType, Phase, TrafficCount
from events.storage.migrations import latest, migrations
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

_UPSERT = """
INSERT INTO events (id, camera, rule, type, classes, track_ids, start_pts, end_pts,
                    start_us, end_us, active, score, snapshot, data, phase_rank)
VALUES (:id, :camera, :rule, :type, :classes, :track_ids, :start_pts, :end_pts,
        :start_us, :end_us, :active, :score, :snapshot, :data, :phase_rank)
ON CONFLICT (id) DO UPDATE SET
    camera = excluded.camera, rule = excluded.rule, type = excluded.type,
    classes = excluded.classes, track_ids = excluded.track_ids,
    start_pts = excluded.start_pts, end_pts = excluded.end_pts,
    start_us = excluded.start_us, end_us = excluded.end_us, active = excluded.active,
    score = excluded.score, snapshot = excluded.snapshot, data = excluded.data,
    phase_rank = excluded.phase_rank
WHERE excluded.phase_rank >= events.phase_rank
"""

_SELECT = """
SELECT e.id, e.camera, e.rule, e.type, e.classes, e.track_ids, e.start_pts, e.end_pts,
       e.start_us, e.end_us, e.active, e.score, e.snapshot, e.data,
       s.key AS snap_key, s.score AS snap_score, v.key AS clip_key, l.event_id IS NOT NULL AS locked
"""
# What an event row is read with: its best snapshot, its clip and its evidence lock.
_JOINS = (
    " LEFT JOIN snapshots s ON s.event_id = e.id LEFT JOIN clips v ON v.event_id = e.id"
    " LEFT JOIN locks l ON l.event_id = e.id"
)

_ADD_TRAFFIC = (
    "INSERT INTO traffic (camera, line, minute_us, class_name, direction, count) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (camera, line, minute_us, class_name, direction) "
    "DO UPDATE SET count = count + excluded.count"
)


class SqliteEventStore:
    """:class:`events.storage.store.EventStore` on one SQLite file (``":memory:"`` works for tests)."""

    def __init__(self, path: str | Path, *, timeout: float = 10.0) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a batch is one transaction.
            self._db = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: durable across application crashes; a power cut may lose
            # the last commits but never corrupts the file.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            self._migrate()
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open event database {self.path}: {exc}") from exc

    def __repr__(self) -> str:
        return f"SqliteEventStore({self.path!r})"

    def _migrate(self) -> None:
        db = self._db
        with self._transaction():
            db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_us INTEGER NOT NULL)"
            )
            applied = {row[0] for row in db.execute("SELECT version FROM schema_migrations")}
            if not applied and db.execute("PRAGMA user_version").fetchone()[0] == 1:
                # Written before migrations were numbered: its schema is version 1.
                db.execute("INSERT INTO schema_migrations VALUES (1, 'initial', ?)", (_now_us(),))
                applied = {1}
        known = latest("sqlite")
        if applied and max(applied) > known:
            raise StorageError(
                f"event database {self.path} has schema version {max(applied)}, newer than this "
                f"khupho's {known}: upgrade khupho or use another file"
            )
        for migration in migrations("sqlite"):
            if migration.version in applied:
                continue
            with self._transaction():
                for statement in migration.statements:
                    db.execute(statement)
                db.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                    (migration.version, migration.name, _now_us()),
                )

    @property
    def schema_version(self) -> int:
        with self._reading() as db:
            return int(db.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0])

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._reading() as db:
            # IMMEDIATE takes the write lock up front, so a concurrent writer in another
            # process waits (busy_timeout) instead of failing half way through.
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                if db.in_transaction:  # SQLite may already have rolled back (e.g. disk full)
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock, with SQLite failures (disk full, locked) as StorageError."""
        with self._lock:
            try:
                yield self._db
            except sqlite3.Error as exc:
                raise StorageError(f"event database {self.path}: {exc}") from exc

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
    ) -> bool:
        rows = [self._row(t) for t in transitions]  # validate before taking the lock
        counts = _traffic_rows(traffic)
        if not rows and not counts and batch_id is None:
            return True
        with self._transaction() as db:
            if batch_id is not None:
                seen = db.execute("SELECT 1 FROM applied_batches WHERE batch_id = ?", (batch_id,)).fetchone()
                if seen is not None:
                    return False
                db.execute("INSERT INTO applied_batches VALUES (?, ?)", (batch_id, _now_us()))
            for row, classes in rows:
                if db.execute(_UPSERT, row).rowcount == 0:
                    continue  # an older phase arriving late: the stored row wins
                db.execute("DELETE FROM event_classes WHERE event_id = ?", (row["id"],))
                db.executemany(
                    "INSERT OR IGNORE INTO event_classes (class_name, start_us, event_id) VALUES (?, ?, ?)",
                    [(c, row["start_us"], row["id"]) for c in classes],
                )
            if counts:
                db.executemany(_ADD_TRAFFIC, counts)
        return True

    def forget_batches(self, before: datetime) -> int:
        with self._transaction() as db:
            return db.execute(
                "DELETE FROM applied_batches WHERE applied_us < ?", (to_epoch_us(before),)
            ).rowcount

    @staticmethod
    def _row(transition: EventTransition) -> tuple[dict[str, Any], list[str]]:
        event = transition.event
        doc = event.model_dump(mode="json", include={"classes", "track_ids", "data"})
        row = {
            "id": event.id,
            "camera": event.camera,
            "rule": event.rule,
            "type": str(event.type),
            "classes": json.dumps(doc["classes"]),
            "track_ids": json.dumps(doc["track_ids"]),
            "start_pts": event.start_pts,
            "end_pts": event.end_pts,
            "start_us": to_epoch_us(event.start_time),
            "end_us": None if event.end_time is None else to_epoch_us(event.end_time),
            "active": int(event.active),
            "score": event.score,
            "snapshot": event.snapshot,
            "data": json.dumps(doc["data"], separators=(",", ":")),
            "phase_rank": _PHASE_RANK[transition.phase],
        }
        return row, sorted(set(event.classes))

    def set_snapshot(self, event_id: str, key: str, score: float) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO snapshots (event_id, key, score) VALUES (?, ?, ?) "
                "ON CONFLICT (event_id) DO UPDATE SET key = excluded.key, score = excluded.score",
                (event_id, key, float(score)),
            )

    def add_traffic(self, counts: Iterable[TrafficCount]) -> None:
        self.apply_batch((), counts)

    def set_clip(self, event_id: str, key: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO clips (event_id, key) VALUES (?, ?) "
                "ON CONFLICT (event_id) DO UPDATE SET key = excluded.key",
                (event_id, key),
            )

    def set_locked(self, event_id: str, locked: bool) -> bool:
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM events WHERE id = ?", (event_id,)).fetchone() is None:
                return False
            if locked:
                db.execute(
                    "INSERT OR IGNORE INTO locks (event_id, locked_us) VALUES (?, ?)", (event_id, _now_us())
                )
            else:
                db.execute("DELETE FROM locks WHERE event_id = ?", (event_id,))
            return True

    def clear_media(self, event_id: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM snapshots WHERE event_id = ?", (event_id,))
            db.execute("DELETE FROM clips WHERE event_id = ?", (event_id,))
            db.execute("UPDATE events SET snapshot = NULL WHERE id = ?", (event_id,))

    def delete_events(self, event_ids: Sequence[str]) -> int:
        ids = [(i,) for i in event_ids]
        if not ids:
            return 0
        with self._transaction() as db:
            # Never a locked event, even if the caller raced with a lock.
            deleted = 0
            for (event_id,) in ids:
                deleted += db.execute(
                    "DELETE FROM events WHERE id = ? AND id NOT IN (SELECT event_id FROM locks)", (event_id,)
                ).rowcount
            # Then the rows that hang off an event whose row is gone (also a late snapshot's), never
            # those of a kept (locked) event.
            for table in ("event_classes", "snapshots", "clips"):
                db.executemany(
                    f"DELETE FROM {table} WHERE event_id = ? AND event_id NOT IN (SELECT id FROM events)"
                    " AND event_id NOT IN (SELECT event_id FROM locks)",
                    ids,
                )
            return deleted

    def delete_traffic(self, before: datetime, camera: str | None = None) -> int:
        sql, params = "DELETE FROM traffic WHERE minute_us < ?", [to_epoch_us(before)]
        if camera is not None:
            sql += " AND camera = ?"
            params.append(camera)
        with self._transaction() as db:
            return db.execute(sql, params).rowcount

    # -- reads ----------------------------------------------------------------

    def get(self, event_id: str) -> Event | None:
        with self._reading() as db:
            row = db.execute(
                _SELECT + " FROM events e" + _JOINS + " WHERE e.id = ?",
                (event_id,),
            ).fetchone()
        return None if row is None else _event(row)

    def open_events(self, camera: str | None = None) -> list[Event]:
        where, params = (
            ("e.active = 1", ()) if camera is None else ("e.active = 1 AND e.camera = ?", (camera,))
        )
        with self._reading() as db:
            rows = db.execute(
                _SELECT + " FROM events e" + _JOINS + f" WHERE {where} ORDER BY e.start_us, e.id", params
            ).fetchall()
        return [_event(r) for r in rows]

    def expired(
        self,
        before: datetime,
        *,
        camera: str | None = None,
        types: Sequence[EventType] | None = None,
        limit: int = 500,
    ) -> list[Event]:
        where = ["e.active = 0", "e.end_us < ?", "l.event_id IS NULL"]
        params: list[Any] = [to_epoch_us(before)]
        if camera is not None:
            where.append("e.camera = ?")
            params.append(camera)
        if types is not None:
            where.append(f"e.type IN ({', '.join('?' * len(types))})")
            params.extend(str(EventType(t)) for t in types)
        sql = f"{_SELECT} FROM events e{_JOINS} WHERE {' AND '.join(where)} ORDER BY e.end_us, e.id LIMIT ?"
        with self._reading() as db:
            rows = db.execute(sql, [*params, limit]).fetchall()
        return [_event(r) for r in rows]

    def oldest_with_media(self, limit: int = 100) -> list[Event]:
        sql = (
            f"{_SELECT} FROM events e{_JOINS} WHERE e.active = 0 AND l.event_id IS NULL"
            " AND (s.key IS NOT NULL OR v.key IS NOT NULL OR e.snapshot IS NOT NULL)"
            " ORDER BY e.end_us, e.id LIMIT ?"
        )
        with self._reading() as db:
            rows = db.execute(sql, (limit,)).fetchall()
        return [_event(r) for r in rows]

    def _query(self, filters: EventFilters) -> tuple[str, list[str], list[Any], str, str]:
        """FROM clause, WHERE terms, parameters and the two columns of the page key."""
        camera, type, class_name = filters.camera, filters.type, filters.class_name
        since, until, active = filters.since, filters.until, filters.active
        where: list[str] = []
        params: list[Any] = []
        if class_name is not None:
            # Walk the class index in page order; the join fetches the event itself.
            source = "event_classes c JOIN events e ON e.id = c.event_id"
            key_us, key_id = "c.start_us", "c.event_id"
            where.append("c.class_name = ?")
            params.append(class_name)
        else:
            source = "events e"
            key_us, key_id = "e.start_us", "e.id"
        if camera is not None:
            where.append("e.camera = ?")
            params.append(camera)
        if type is not None:
            where.append("e.type = ?")
            params.append(str(EventType(type)))
        if active is not None:
            where.append("e.active = ?")
            params.append(int(active))
        if since is not None:
            where.append(f"{key_us} >= ?")
            params.append(to_epoch_us(since))
        if until is not None:
            where.append(f"{key_us} < ?")
            params.append(to_epoch_us(until))
        return source, where, params, key_us, key_id

    def list_events(
        self, filters: EventFilters | None = None, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[Event], str | None]:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        source, where, params, key_us, key_id = self._query(filters or EventFilters())
        if cursor is not None:
            after_us, after_id = decode_cursor(cursor)
            where.append(f"({key_us}, {key_id}) < (?, ?)")
            params.extend((after_us, after_id))
        sql = (
            f"{_SELECT} FROM {source}{_JOINS}"
            f"{' WHERE ' + ' AND '.join(where) if where else ''}"
            f" ORDER BY {key_us} DESC, {key_id} DESC LIMIT ?"
        )
        params.append(limit + 1)  # one extra row tells whether a next page exists
        with self._reading() as db:
            rows = db.execute(sql, params).fetchall()
        events = [_event(r) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = events[-1]
            next_cursor = encode_cursor(last.start_time, last.id)
        return events, next_cursor

    def count_events(self, filters: EventFilters | None = None) -> int:
        source, where, params, _, _ = self._query(filters or EventFilters())
        sql = f"SELECT COUNT(*) FROM {source}{' WHERE ' + ' AND '.join(where) if where else ''}"
        with self._reading() as db:
            return int(db.execute(sql, params).fetchone()[0])

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
                where.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            where.append("minute_us >= ?")
            params.append(to_epoch_us(since))
        if until is not None:
            where.append("minute_us < ?")
            params.append(to_epoch_us(until))
        step = step_us(bucket)
        sql = (
            f"SELECT minute_us - (minute_us % {step}) AS t, camera, line, class_name, direction, SUM(count) "
            f"FROM traffic{' WHERE ' + ' AND '.join(where) if where else ''} "
            "GROUP BY t, camera, line, class_name, direction ORDER BY t"
        )
        with self._reading() as db:
            rows = db.execute(sql, params).fetchall()
        return regroup(rows, bucket, tz)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _event(row: sqlite3.Row | tuple[Any, ...]) -> Event:
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
        classes=json.loads(classes),
        track_ids=json.loads(track_ids),
        start_pts=start_pts,
        end_pts=end_pts,
        start_time=from_epoch_us(start_us),
        end_time=None if end_us is None else from_epoch_us(end_us),
        active=bool(active),
        score=score if snap_key is None else snap_score,
        snapshot=snapshot if snap_key is None else snap_key,
        clip=clip_key,
        locked=bool(locked),
        data=json.loads(data),
    )


def _now_us() -> int:
    return to_epoch_us(datetime.now(UTC))


def _traffic_rows(counts: Iterable[TrafficCount]) -> list[tuple[str, str, int, str, str, int]]:
    rows = []
    for c in counts:
        minute = to_epoch_us(c.minute)
        rows.append((c.camera, c.line, minute - minute % MINUTE_US, c.class_name, c.direction, c.count))
    return rows
