"""Helpers of the API tests: events to seed and the parts an app is built from."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI

from api.app import create_app
from api.auth import Role, ScopeIndex
from api.auth.config import KhuPhoConfig, WardConfig
from api.auth.security import Security
from api.metrics import KhuphoMetrics
from events.model import Event, EventTransition, EventType, Phase
from events.storage.bus import EventBus
from events.storage.objects import ObjectStore
from events.storage.sqlite import SqliteEventStore

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ADMIN_PASSWORD = "admin-test-password-1"
PASSWORD = "test-password-123"

# Two wards; cam1 is in kp1 and cam2 in kp2 (both of ward w1), cam3 in kp3 (ward w2).
SCOPE = ScopeIndex(
    wards={"w1": WardConfig(name="Phường Bến Nghé"), "w2": WardConfig(name="Phường Đa Kao")},
    khu_pho={
        "kp1": KhuPhoConfig(name="Khu phố 1", ward="w1"),
        "kp2": KhuPhoConfig(name="Khu phố 2", ward="w1"),
        "kp3": KhuPhoConfig(name="Khu phố 3", ward="w2"),
    },
    camera_khu_pho={"cam1": "kp1", "cam2": "kp2", "cam3": "kp3"},
)


def open_security(db_path: Any, registry: Any = None, scope: ScopeIndex = SCOPE) -> Security:
    security = Security.open(db_path, scope, registry=registry)
    security.auth.add_user("admin", ADMIN_PASSWORD, Role.ADMIN, [])
    return security


def login(client: Any, username: str = "admin", password: str = ADMIN_PASSWORD, base: str = "") -> None:
    """Log an httpx or Starlette test client in; writes then carry the CSRF header."""
    r = client.post(f"{base}/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    client.headers["X-CSRF-Token"] = r.json()["csrf_token"]


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
    security: Security
    cameras: list[dict[str, Any]] = field(default_factory=list)

    def app(self, **kw: Any) -> FastAPI:
        return create_app(
            self.store,
            self.objects,
            self.bus,
            lambda: self.cameras,
            self.metrics,
            security=self.security,
            **kw,
        )


def jpeg_bytes(seed: int = 0) -> bytes:
    """A small real JPEG; a different ``seed`` gives different bytes."""
    import cv2
    import numpy as np

    image = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return data.tobytes()


def wait_in_page(page: Any, expression: str, timeout_s: float = 30.0) -> None:
    """Wait until ``expression`` is true in a Playwright page.

    Playwright's ``wait_for_function`` with a string compiles it inside the page, which the
    console's Content-Security-Policy (no 'unsafe-eval') forbids whenever the first check is
    false; ``evaluate`` goes through the DevTools protocol, which the page's policy does not govern.
    """
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout_s:.0f} s in the page: {expression}")
        time.sleep(0.1)
