"""Camera connection and picture health as security events (camera_offline, camera_frozen, ...).

A camera going dark or being covered is an incident for the security staff, so
these conditions go through the same event lifecycle as intrusions: a start
when the condition is confirmed, an end when it clears.
"""

from __future__ import annotations

import threading
from datetime import datetime
from zoneinfo import ZoneInfo

from events.model import Event, EventTransition, EventType, Phase
from ingest.health import HealthChange
from ingest.status import CameraState

RULE = "camera_health"


class CameraHealthEvents:
    """Turns one camera's status changes and health changes into event transitions.

    Status callbacks come from the camera's reader thread and health changes from
    its worker thread, so the open-event table is guarded by a lock.
    """

    def __init__(self, camera: str, tz: str = "Asia/Ho_Chi_Minh") -> None:
        self.camera = camera
        self.tz = ZoneInfo(tz)
        self._open: dict[EventType, Event] = {}
        self._lock = threading.Lock()

    def _now(self, wall: float | None) -> datetime:
        return datetime.fromtimestamp(wall, self.tz) if wall is not None else datetime.now(self.tz)

    def _start(self, type_: EventType, pts: float, wall: float | None, data: dict) -> EventTransition:
        event = Event(
            camera=self.camera, rule=RULE, type=type_, start_pts=pts, start_time=self._now(wall), data=data
        )
        self._open[type_] = event
        return EventTransition(phase=Phase.START, event=event)

    def _end(self, type_: EventType, pts: float, wall: float | None, data: dict) -> EventTransition | None:
        event = self._open.pop(type_, None)
        if event is None:
            return None
        ended = event.model_copy(
            update={
                "end_pts": pts,
                "end_time": self._now(wall),
                "active": False,
                "data": {**event.data, **data},
            }
        )
        return EventTransition(phase=Phase.END, event=ended)

    def status_changed(
        self,
        *,
        old: CameraState,
        new: CameraState,
        error: str | None,
        pts: float = 0.0,
        wall: float | None = None,
    ) -> list[EventTransition]:
        """``camera_offline`` starts when the camera is declared offline and ends when frames return;
        ``camera_online`` marks the return (a start and end at once)."""
        out: list[EventTransition] = []
        with self._lock:
            if new is CameraState.OFFLINE:
                if EventType.CAMERA_OFFLINE not in self._open:
                    out.append(self._start(EventType.CAMERA_OFFLINE, pts, wall, {"error": error}))
            elif new is CameraState.ONLINE and old is CameraState.OFFLINE:
                end = self._end(EventType.CAMERA_OFFLINE, pts, wall, {})
                if end is not None:
                    out.append(end)
                start = self._start(EventType.CAMERA_ONLINE, pts, wall, {"previous_error": error})
                out.append(start)
                out.append(self._end(EventType.CAMERA_ONLINE, pts, wall, {}))  # type: ignore[arg-type]
        return out

    def open_ids(self) -> list[str]:
        """Ids of the events open now."""
        with self._lock:
            return [event.id for event in self._open.values()]

    def health_changed(self, changes: list[HealthChange], wall: float | None = None) -> list[EventTransition]:
        out: list[EventTransition] = []
        with self._lock:
            for change in changes:
                type_ = EventType(f"camera_{change.condition.value}")
                if change.active:
                    if type_ not in self._open:
                        out.append(self._start(type_, change.since, wall, change.data()))
                else:
                    end = self._end(type_, change.since, wall, {"cleared": change.data()})
                    if end is not None:
                        out.append(end)
        return out

    def close(self, pts: float = 0.0, wall: float | None = None) -> list[EventTransition]:
        """End every open health event (shutdown): the condition's end is unknown, so it is marked."""
        with self._lock:
            return [
                t for t in (self._end(k, pts, wall, {"end_reason": "closed"}) for k in list(self._open)) if t
            ]
