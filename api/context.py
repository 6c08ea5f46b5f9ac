"""What the routes need, held on ``app.state`` and handed to them as a FastAPI dependency."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, Request

from api.metrics import KhuphoMetrics
from events.storage.bus import EventBus
from events.storage.objects import ObjectStore
from events.storage.store import EventStore

# Returns one status per configured camera: dicts, pydantic models or objects with the
# attributes of ``api.schemas.CameraStatus`` (id, name, state, last_frame_time, ...).
CameraStatusProvider = Callable[[], Iterable[Mapping[str, Any] | object]]


@dataclass(frozen=True, slots=True)
class AppContext:
    store: EventStore
    objects: ObjectStore
    bus: EventBus
    cameras: CameraStatusProvider
    metrics: KhuphoMetrics
    heartbeat_s: float
    presign_expiry: timedelta
    sse_queue_size: int
    traffic_tz: str  # default time zone of /traffic hour and day buckets


def get_context(request: Request) -> AppContext:
    return request.app.state.khupho


Ctx = Annotated[AppContext, Depends(get_context)]
