"""Helpers of the API tests: events to seed and the parts an app is built from."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI

from api.app import create_app
from api.metrics import KhuphoMetrics
from events.model import Event, EventTransition, EventType, Phase
from events.storage.bus import EventBus
from events.storage.objects import ObjectStore
from events.storage.sqlite import SqliteEventStore

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def make_event(i: int, **kw: Any) -> Event:
    fields: dict[str, Any] = {
        "id": f"ev{i:03d}",
        "camera": "cam1",
        "rule": "gate",
        "type": EventType.ZONE_INTRUSION,
        "classes": ["person"],
        "start_pts": float(i),
        "start_time": T0 + timedelta(seconds=i),
    }
    fields.update(kw)
    return Event(**fields)


def start(ev: Event) -> EventTransition:
    return EventTransition(phase=Phase.START, event=ev)


@dataclass
class Parts:
    store: SqliteEventStore
    objects: ObjectStore
    bus: EventBus
    metrics: KhuphoMetrics
    cameras: list[dict[str, Any]] = field(default_factory=list)

    def app(self, **kw: Any) -> FastAPI:
        return create_app(self.store, self.objects, self.bus, lambda: self.cameras, self.metrics, **kw)
