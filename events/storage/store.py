"""The event store interface: where transitions and traffic counts are kept and how they are queried.

Backends (``events.storage.sqlite`` now, PostgreSQL later) implement :class:`EventStore`;
everything else (the writer, the API) sees only this interface. The backend-neutral
pieces live here too: the opaque pagination cursor and the storage errors.

Ordering and pagination contract, the same for every backend:
events come newest first by ``(start_time, id)``; a cursor encodes the key of the
last event of a page and the next page holds the events strictly after it in that
order. Keyset pagination keeps pages stable while new events are inserted: a new
event is newer than every cursor taken before it, so it never shifts or repeats
older pages.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from events.model import Event, EventTransition, EventType, TrafficCount

TrafficBucket = Literal["minute", "hour", "day"]


class StorageError(Exception):
    """A store or object store that cannot do what was asked; the message names the server and the reason."""


class InvalidCursor(ValueError):
    """A pagination cursor that this store did not issue (or that was damaged in transit)."""


class TrafficRow(BaseModel):
    """Crossings summed over one time bucket, for one line, class and direction."""

    model_config = ConfigDict(frozen=True)

    time: datetime  # start of the bucket, timezone-aware, in the requested time zone
    camera: str
    line: str
    class_name: str
    direction: str
    count: int


def to_epoch_us(dt: datetime) -> int:
    """Microseconds since the Unix epoch; naive datetimes are refused (the model says timezone-aware)."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"naive datetime {dt.isoformat()} (storage needs timezone-aware times)")
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    # Integer arithmetic on timedelta: no float rounding, so a round trip is exact to the microsecond.
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_epoch_us(us: int) -> datetime:
    """The UTC datetime for microseconds since the Unix epoch."""
    seconds, micros = divmod(us, 1_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=micros)


def encode_cursor(start_time: datetime, event_id: str) -> str:
    """An opaque, URL-safe cursor for the position just after the event with this key."""
    raw = json.dumps([to_epoch_us(start_time), event_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """``(start_time in epoch µs, event id)`` from a cursor, or :class:`InvalidCursor`."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error) as exc:
        raise InvalidCursor("cursor is not a pagination cursor issued by this API") from exc
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not isinstance(value[0], int)
        or isinstance(value[0], bool)
        or not isinstance(value[1], str)
        # SQLite integers are 64-bit: a larger time (e.g. 2**70 in a tampered cursor) is no position.
        or not -(2**62) <= value[0] < 2**62
        or len(value[1]) > 128
    ):
        raise InvalidCursor("cursor is not a pagination cursor issued by this API")
    return value[0], value[1]


@dataclass(frozen=True, slots=True)
class EventFilters:
    """Which events a listing or count returns; ``None`` leaves a field unfiltered.

    ``since``/``until`` bound the start time (``since <= start_time < until``);
    ``class_name`` matches events whose ``classes`` contain it; ``active`` picks
    open (True) or ended (False) events.
    """

    camera: str | None = None
    type: EventType | None = None
    class_name: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    active: bool | None = None


@runtime_checkable
class EventStore(Protocol):
    """Durable events and traffic counts.

    Implementations are thread-safe: the pipeline writes from its own threads while
    the API reads from a thread pool.

    Snapshot keys set with :meth:`set_snapshot` survive later transitions: rules do
    not know the object-store key, so a transition whose event has ``snapshot=None``
    keeps the stored key and score. A snapshot may even be set before the event's
    first transition arrives (the snapshot writer and the event writer race).
    """

    def apply(self, transition: EventTransition) -> None:
        """Upsert the transition's event: ``start`` inserts, ``update``/``end`` replace.

        Idempotent: replaying a transition leaves the same row. An ``update`` or
        ``end`` for an unknown id inserts the event (e.g. the ``start`` was lost).
        """
        ...

    def apply_many(self, transitions: Iterable[EventTransition]) -> None:
        """Apply transitions in order, all in one transaction."""
        ...

    def apply_batch(
        self,
        transitions: Iterable[EventTransition],
        traffic: Iterable[TrafficCount],
        *,
        batch_id: str | None = None,
    ) -> bool:
        """Apply transitions in order and add traffic counts, all in one transaction (the writer's
        unit: a line crossing and its count are stored together or not at all).

        With ``batch_id``, a batch already applied is skipped whole and False returned, so a
        batch replayed from the journal after a crash never counts traffic twice.
        """
        ...

    def forget_batches(self, before: datetime) -> int:
        """Forget the ids of batches applied before ``before`` (their replays are over)."""
        ...

    def set_snapshot(self, event_id: str, key: str, score: float) -> None:
        """Record the object-store key and object confidence of the event's best snapshot."""
        ...

    def add_traffic(self, counts: Iterable[TrafficCount]) -> None:
        """Add the counts to the stored per-minute rows (``count += n``), in one transaction."""
        ...

    def set_clip(self, event_id: str, key: str) -> None:
        """Record the object-store key of the event's MP4 clip (may come before the event's row)."""
        ...

    def set_locked(self, event_id: str, locked: bool) -> bool:
        """Lock (evidence: never purged) or unlock an event; False when there is no such event."""
        ...

    def clear_media(self, event_id: str) -> None:
        """Forget the event's snapshot and clip keys (their objects were deleted); the row stays."""
        ...

    def delete_events(self, event_ids: Sequence[str]) -> int:
        """Delete these events with their class index, snapshot and clip rows; locked events are
        kept whatever the caller asked. Returns how many were deleted."""
        ...

    def delete_traffic(self, before: datetime, camera: str | None = None) -> int:
        """Delete the per-minute counts of minutes before ``before``; returns how many rows."""
        ...

    def get(self, event_id: str) -> Event | None:
        """The event with this id, or ``None``."""
        ...

    def list_events(
        self, filters: EventFilters | None = None, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[Event], str | None]:
        """One page of events matching ``filters``, newest first, and the cursor of the next page
        (``None`` on the last). Raises :class:`InvalidCursor` for a cursor this store did not issue."""
        ...

    def count_events(self, filters: EventFilters | None = None) -> int:
        """How many events match ``filters``."""
        ...

    def open_events(self, camera: str | None = None) -> list[Event]:
        """Every event still active (only ``camera``'s if given), oldest first (at start-up: those a
        crashed run left open; in cluster mode: those of a camera whose actor was lost)."""
        ...

    def expired(
        self,
        before: datetime,
        *,
        camera: str | None = None,
        types: Sequence[EventType] | None = None,
        limit: int = 500,
    ) -> list[Event]:
        """Ended, unlocked events that ended before ``before`` (of ``camera``, of ``types``), the
        oldest end first: what retention deletes."""
        ...

    def oldest_with_media(self, limit: int = 100) -> list[Event]:
        """Ended, unlocked events that still hold a snapshot or clip, the oldest end first: whose
        media goes first when the disk fills."""
        ...

    def traffic(
        self,
        camera: str | None = None,
        line: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        bucket: TrafficBucket = "minute",
        tz: tzinfo = UTC,
    ) -> Sequence[TrafficRow]:
        """Crossings summed per bucket (in time zone ``tz``), line, class and direction, oldest first.

        ``since``/``until`` bound the minute rows (``since <= minute < until``).
        """
        ...

    def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...
