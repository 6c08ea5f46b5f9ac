"""Event records and their transitions: what rules emit and what storage, the API and SSE consume.

An event is immutable; a rule announces it with a ``start`` transition, may
refine it with ``update`` transitions (more tracks, a better snapshot, a
growing count) and closes it with ``end``. Every transition carries the whole
event as it stands after the change, like Frigate's ``new``/``update``/``end``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class EventType(StrEnum):
    LINE_CROSSING = "line_crossing"
    ZONE_INTRUSION = "zone_intrusion"
    LOITERING = "loitering"
    CROWDING = "crowding"
    CAMERA_OFFLINE = "camera_offline"
    CAMERA_ONLINE = "camera_online"
    CAMERA_FROZEN = "camera_frozen"
    CAMERA_BLOCKED = "camera_blocked"
    CAMERA_BLURRED = "camera_blurred"
    CAMERA_MOVED = "camera_moved"
    STOPPED_VEHICLE = "stopped_vehicle"  # standing in a no-stopping zone (events.lanes)
    WRONG_WAY = "wrong_way"  # driving against a lane's direction (events.lanes)


class Phase(StrEnum):
    START = "start"
    UPDATE = "update"
    END = "end"


def new_event_id() -> str:
    return uuid.uuid4().hex


class Event(BaseModel):
    """One security or traffic occurrence on one camera, as it stands now."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(default_factory=new_event_id)
    camera: str
    rule: str  # name of the rule in the camera's config, e.g. "gate_intrusion"
    type: EventType
    classes: list[str] = Field(default_factory=list)  # class names involved
    track_ids: list[int] = Field(default_factory=list)
    start_pts: float  # stream time (s) of the first frame
    end_pts: float | None = None  # stream time (s) of the last frame, set when ended
    start_time: datetime  # wall clock, timezone-aware
    end_time: datetime | None = None
    active: bool = True
    score: float = 0.0  # confidence of the best snapshot's object
    snapshot: str | None = None  # object-store key of the best snapshot JPEG
    clip: str | None = None  # object-store key of the event's MP4 clip (set by storage)
    locked: bool = False  # evidence lock (set by storage): never purged while locked
    data: dict[str, Any] = Field(default_factory=dict)  # rule-specific: direction, count, dwell...


class EventTransition(BaseModel):
    """A change to an event: the phase and the event after the change."""

    model_config = ConfigDict(frozen=True)

    phase: Phase
    event: Event


class TrafficCount(BaseModel):
    """Crossings of one line by one class in one direction during one wall-clock minute."""

    model_config = ConfigDict(frozen=True)

    camera: str
    line: str
    class_name: str
    direction: str  # "in" or "out"
    minute: datetime  # start of the minute, timezone-aware
    count: int
