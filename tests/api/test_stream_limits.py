"""/events/stream answers 503 when the event bus has its maximum of subscribers."""

from __future__ import annotations

from fastapi.testclient import TestClient

from events.storage.bus import EventBus
from tests.api.support import Parts, login


def test_event_stream_refuses_beyond_the_bound(parts: Parts) -> None:
    parts.bus = EventBus(max_subscribers=1)
    holder = parts.bus.subscribe(name="holder")
    with TestClient(parts.app()) as client:
        login(client)
        r = client.get("/events/stream")
        assert r.status_code == 503 and r.headers["retry-after"] == "30"
        assert "khupho_bus_refused_total 0.0" in client.get("/metrics").text
    holder.close()
