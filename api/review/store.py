"""Review items: what an operator looks at, instead of one row per event.

Grouping (like Frigate's review segments): an event joins the newest unresolved
item of the same camera and rule when it starts no later than ``merge_gap_s``
after that item's last activity; otherwise it opens a new item. A busy plaza's
hundred loitering events are then one item with many tracks.

States::

    new ──acknowledge──▶ acknowledged ──assign──▶ assigned ──resolve──▶ resolved ──reopen──▶ reopened
     └──────────── assign / resolve from any unresolved state ─────────────┘

``seq`` grows with every change to any item: the live feed sends what changed
after the last ``seq`` a client saw.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Histogram

from api.auth.db import SecurityDb
from events.model import EventTransition, EventType
from events.storage.store import InvalidCursor, decode_cursor, encode_cursor, from_epoch_us, to_epoch_us

State = Literal["new", "acknowledged", "assigned", "resolved", "reopened"]
Resolution = Literal["true_alarm", "false_alarm", "duplicate"]
Severity = Literal["alert", "detection"]
STATES: tuple[State, ...] = ("new", "acknowledged", "assigned", "resolved", "reopened")
RESOLUTIONS: tuple[Resolution, ...] = ("true_alarm", "false_alarm", "duplicate")
OPEN_STATES = ("new", "acknowledged", "assigned", "reopened")

DEFAULT_SEVERITY: dict[EventType, Severity] = {
    EventType.LINE_CROSSING: "detection",
    EventType.CAMERA_ONLINE: "detection",
}


class ReviewError(ValueError):
    """An action that the item's state does not allow (409), or a bad argument."""


@dataclass(frozen=True, slots=True)
class ReviewItem:
    id: str
    camera: str
    rule: str
    type: str
    severity: Severity
    state: State
    start_time: datetime
    last_time: datetime
    active: bool
    events: int
    tracks: int
    classes: list[str]
    assignee: str | None
    resolution: Resolution | None
    note: str | None
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    seq: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _now_us() -> int:
    return int(time.time() * 1_000_000)


def _dt(us: int | None) -> datetime | None:
    return None if us is None else from_epoch_us(us)


def _item(r: Any) -> ReviewItem:
    return ReviewItem(
        id=r["id"],
        camera=r["camera"],
        rule=r["rule"],
        type=r["type"],
        severity=r["severity"],
        state=r["state"],
        start_time=from_epoch_us(r["start_us"]),
        last_time=from_epoch_us(r["last_us"]),
        active=bool(r["active"]),
        events=r["events"],
        tracks=len(json.loads(r["tracks"])),
        classes=json.loads(r["classes"]),
        assignee=r["assignee"],
        resolution=r["resolution"],
        note=r["note"],
        acknowledged_at=_dt(r["acked_us"]),
        resolved_at=_dt(r["resolved_us"]),
        seq=r["seq"],
    )


class ReviewMetrics:
    """Time to acknowledge and to resolve, per severity, in the service's Prometheus registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        buckets = (10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
        self.ack = Histogram(
            "review_time_to_acknowledge_seconds",
            "From a review item's creation to its acknowledgement",
            ["severity"],
            namespace="khupho",
            registry=registry,
            buckets=buckets,
        )
        self.resolve = Histogram(
            "review_time_to_resolve_seconds",
            "From a review item's creation to its (first) resolution",
            ["severity", "resolution"],
            namespace="khupho",
            registry=registry,
            buckets=buckets,
        )


class ReviewStore:
    def __init__(
        self,
        db: SecurityDb,
        *,
        merge_gap_s: float = 60.0,
        severity_of: Callable[[str, str, EventType], Severity | None] | None = None,
        metrics: ReviewMetrics | None = None,
    ) -> None:
        self.db = db
        self.merge_gap_us = int(merge_gap_s * 1e6)
        self.severity_of = severity_of
        self.metrics = metrics

    # grouping ------------------------------------------------------------------------------------
    def ingest(self, transition: EventTransition) -> str:
        """File the transition's event under a review item; returns the item id."""
        ev = transition.event
        start_us = to_epoch_us(ev.start_time)
        last_us = to_epoch_us(ev.end_time or ev.start_time)
        with self.db.tx() as c:
            link = c.execute("SELECT item_id FROM review_events WHERE event_id = ?", (ev.id,)).fetchone()
            if link is not None:
                item_id = link["item_id"]
            else:
                row = c.execute(
                    "SELECT id FROM review_items WHERE camera = ? AND rule = ? AND state != 'resolved'"
                    " AND last_us >= ? ORDER BY last_us DESC LIMIT 1",
                    (ev.camera, ev.rule, start_us - self.merge_gap_us),
                ).fetchone()
                item_id = row["id"] if row else self._create(c, ev.camera, ev.rule, ev.type, start_us)
            c.execute(
                "INSERT INTO review_events (event_id, item_id, start_us, active) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (event_id) DO UPDATE SET active = excluded.active",
                (ev.id, item_id, start_us, int(ev.active)),
            )
            item = c.execute("SELECT tracks, classes FROM review_items WHERE id = ?", (item_id,)).fetchone()
            tracks = sorted(set(json.loads(item["tracks"])) | set(ev.track_ids))[-1000:]
            classes = sorted(set(json.loads(item["classes"])) | set(ev.classes))
            c.execute(
                # CASE rather than SQLite's max(a, b) / PostgreSQL's greatest: one statement for both.
                "UPDATE review_items SET last_us = CASE WHEN last_us > ? THEN last_us ELSE ? END,"
                " start_us = CASE WHEN start_us < ? THEN start_us ELSE ? END,"
                " events = (SELECT count(*) FROM review_events WHERE item_id = ?),"
                " active = CASE WHEN EXISTS (SELECT 1 FROM review_events WHERE item_id = ? AND active = 1)"
                " THEN 1 ELSE 0 END,"
                " tracks = ?, classes = ?, seq = ? WHERE id = ?",
                (
                    last_us,
                    last_us,
                    start_us,
                    start_us,
                    item_id,
                    item_id,
                    json.dumps(tracks),
                    json.dumps(classes),
                    _next_seq(c),
                    item_id,
                ),
            )
        return item_id

    def _create(self, c: Any, camera: str, rule: str, type: EventType, start_us: int) -> str:
        severity = (
            self.severity_of(camera, rule, type) if self.severity_of else None
        ) or DEFAULT_SEVERITY.get(type, "alert")
        item_id = uuid.uuid4().hex
        c.execute(
            "INSERT INTO review_items (id, camera, rule, type, severity, state, start_us, last_us, active,"
            " events, tracks, classes, created_us, seq)"
            " VALUES (?, ?, ?, ?, ?, 'new', ?, ?, 1, 0, '[]', '[]', ?, ?)",
            (item_id, camera, rule, str(type), severity, start_us, start_us, _now_us(), _next_seq(c)),
        )
        return item_id

    # reading -------------------------------------------------------------------------------------
    def get(self, item_id: str, cameras: Collection[str] | None = None) -> ReviewItem | None:
        """The item, or ``None`` when unknown or outside ``cameras`` (``None``: every camera)."""
        rows = self.db.read("SELECT * FROM review_items WHERE id = ?", (item_id,))
        if not rows or (cameras is not None and rows[0]["camera"] not in cameras):
            return None
        return _item(rows[0])

    def list(
        self,
        cameras: Collection[str] | None,
        *,
        camera: list[str] | None = None,
        state: list[str] | None = None,
        type: list[str] | None = None,
        severity: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[ReviewItem], str | None]:
        """Newest first by start time; ``cursor`` is the previous page's ``next_cursor``."""
        where, params = _filters(cameras, camera, state, type, severity, since, until)
        if cursor is not None:
            cur_us, cur_id = decode_cursor(cursor)
            where.append("(start_us < ? OR (start_us = ? AND id < ?))")
            params += [cur_us, cur_us, cur_id]
        sql = "SELECT * FROM review_items" + (" WHERE " + " AND ".join(where) if where else "")
        rows = self.db.read(sql + " ORDER BY start_us DESC, id DESC LIMIT ?", (*params, limit + 1))
        items = [_item(r) for r in rows[:limit]]
        more = len(rows) > limit
        return items, encode_cursor(items[-1].start_time, items[-1].id) if more and items else None

    def changed_since(self, seq: int, cameras: Collection[str] | None, limit: int = 200) -> list[ReviewItem]:
        where, params = _filters(cameras, None, None, None, None, None, None)
        where.append("seq > ?")
        rows = self.db.read(
            "SELECT * FROM review_items WHERE " + " AND ".join(where) + " ORDER BY seq LIMIT ?",
            (*params, seq, limit),
        )
        return [_item(r) for r in rows]

    def last_seq(self) -> int:
        return int(self.db.read("SELECT coalesce(max(seq), 0) AS n FROM review_items")[0]["n"])

    def event_ids(self, item_id: str, limit: int = 200) -> list[str]:
        rows = self.db.read(
            "SELECT event_id FROM review_events WHERE item_id = ? ORDER BY start_us DESC LIMIT ?",
            (item_id, limit),
        )
        return [r["event_id"] for r in rows]

    def item_of_event(self, event_id: str) -> str | None:
        rows = self.db.read("SELECT item_id FROM review_events WHERE event_id = ?", (event_id,))
        return rows[0]["item_id"] if rows else None

    def comments(self, item_id: str) -> list[dict[str, Any]]:
        rows = self.db.read("SELECT * FROM review_comments WHERE item_id = ? ORDER BY id", (item_id,))
        return [{"author": r["author"], "time": from_epoch_us(r["ts_us"]), "text": r["text"]} for r in rows]

    def seen_by(self, item_id: str) -> list[str]:
        return [
            r["username"]
            for r in self.db.read("SELECT username FROM review_seen WHERE item_id = ?", (item_id,))
        ]

    def seen_items(self, username: str, item_ids: Collection[str]) -> set[str]:
        if not item_ids:
            return set()
        marks = ",".join("?" * len(item_ids))
        rows = self.db.read(
            f"SELECT item_id FROM review_seen WHERE username = ? AND item_id IN ({marks})",
            (username, *item_ids),
        )
        return {r["item_id"] for r in rows}

    # actions -------------------------------------------------------------------------------------
    def acknowledge(self, item_id: str) -> ReviewItem:
        return self._transition(item_id, ("new", "reopened"), "acknowledged", acked=True)

    def assign(self, item_id: str, username: str) -> ReviewItem:
        return self._transition(item_id, OPEN_STATES, "assigned", acked=True, assignee=username)

    def resolve(self, item_id: str, resolution: str, note: str) -> ReviewItem:
        if resolution not in RESOLUTIONS:
            raise ReviewError(f"resolution must be one of {', '.join(RESOLUTIONS)}")
        return self._transition(
            item_id, OPEN_STATES, "resolved", acked=True, resolution=resolution, note=note
        )

    def reopen(self, item_id: str) -> ReviewItem:
        return self._transition(item_id, ("resolved",), "reopened")

    def comment(self, item_id: str, author: str, text: str) -> None:
        text = text.strip()
        if not text or len(text) > 2000:
            raise ReviewError("a comment has 1 to 2000 characters")
        with self.db.tx() as c:
            c.execute(
                "INSERT INTO review_comments (item_id, author, ts_us, text) VALUES (?, ?, ?, ?)",
                (item_id, author, _now_us(), text),
            )
            c.execute("UPDATE review_items SET seq = ? WHERE id = ?", (_next_seq(c), item_id))

    def mark_seen(self, item_id: str, username: str) -> None:
        with self.db.tx() as c:
            c.execute(
                "INSERT INTO review_seen (item_id, username, ts_us) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (item_id, username, _now_us()),
            )

    def _transition(
        self,
        item_id: str,
        allowed: tuple[str, ...],
        new_state: State,
        *,
        acked: bool = False,
        assignee: str | None = None,
        resolution: str | None = None,
        note: str | None = None,
    ) -> ReviewItem:
        now = _now_us()
        with self.db.tx() as c:
            row = c.execute("SELECT * FROM review_items WHERE id = ?", (item_id,)).fetchone()
            if row is None:
                raise KeyError(item_id)
            if row["state"] not in allowed:
                raise ReviewError(f"a {row['state']} item cannot become {new_state}")
            first_ack = acked and row["acked_us"] is None
            first_resolve = new_state == "resolved" and row["resolved_us"] is None
            c.execute(
                "UPDATE review_items SET state = ?, seq = ?, acked_us = coalesce(acked_us, ?),"
                " assignee = coalesce(?, assignee), resolution = ?, note = coalesce(?, note),"
                " resolved_us = CASE WHEN ? = 'resolved' THEN ? ELSE resolved_us END WHERE id = ?",
                (
                    new_state,
                    _next_seq(c),
                    now if acked else None,
                    assignee,
                    resolution if new_state == "resolved" else None,
                    note,
                    new_state,
                    now,
                    item_id,
                ),
            )
        if self.metrics is not None:
            waited = (now - row["created_us"]) / 1e6
            if first_ack:
                self.metrics.ack.labels(row["severity"]).observe(waited)
            if first_resolve:
                self.metrics.resolve.labels(row["severity"], resolution).observe(waited)
        item = self.get(item_id)
        assert item is not None
        return item


def _next_seq(c: Any) -> int:
    return int(c.execute("SELECT coalesce(max(seq), 0) + 1 AS n FROM review_items").fetchone()["n"])


def _filters(
    cameras: Collection[str] | None,
    camera: list[str] | None,
    state: list[str] | None,
    type: list[str] | None,
    severity: str | None,
    since: datetime | None,
    until: datetime | None,
) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []

    def one_of(column: str, values: Collection[str]) -> None:
        where.append(f"{column} IN ({','.join('?' * len(values))})" if values else "1 = 0")
        params.extend(values)

    if cameras is not None:
        one_of("camera", sorted(cameras))
    if camera:
        one_of("camera", camera)
    if state:
        one_of("state", state)
    if type:
        one_of("type", type)
    if severity:
        where.append("severity = ?")
        params.append(severity)
    if since is not None:
        where.append("last_us >= ?")
        params.append(to_epoch_us(since if since.tzinfo else since.replace(tzinfo=UTC)))
    if until is not None:
        where.append("start_us < ?")
        params.append(to_epoch_us(until if until.tzinfo else until.replace(tzinfo=UTC)))
    return where, params


__all__ = ["InvalidCursor", "ReviewError", "ReviewItem", "ReviewMetrics", "ReviewStore"]
