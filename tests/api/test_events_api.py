from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from events.model import EventType, Phase
from tests.api.support import T0, Parts, make_event, start


def seed(parts: Parts) -> None:
    parts.store.apply_many(
        [
            start(make_event(0, camera="cam1", classes=["person"])),
            start(make_event(1, camera="cam2", type=EventType.LINE_CROSSING, classes=["car"])),
            start(make_event(2, camera="cam1", type=EventType.LINE_CROSSING, classes=["car", "person"])),
            start(
                make_event(
                    3, camera="cam2", classes=["person"], active=False, end_time=T0 + timedelta(minutes=1)
                )
            ),
        ]
    )


def ids(body: dict) -> list[str]:
    return [e["id"] for e in body["items"]]


def test_list_filters_and_shape(client: TestClient, parts: Parts) -> None:
    seed(parts)
    body = client.get("/events").json()
    assert ids(body) == ["ev003", "ev002", "ev001", "ev000"] and body["next_cursor"] is None
    first = body["items"][0]
    assert (
        first["camera"] == "cam2"
        and first["start_time"] == "2024-05-01T12:00:03Z"
        and first["active"] is False
    )
    assert ids(client.get("/events", params={"camera": "cam1"}).json()) == ["ev002", "ev000"]
    assert ids(client.get("/events", params={"type": "line_crossing"}).json()) == ["ev002", "ev001"]
    assert ids(client.get("/events", params={"class": "car"}).json()) == ["ev002", "ev001"]
    assert ids(client.get("/events", params={"active": "false"}).json()) == ["ev003"]
    window = {
        "since": "2024-05-01T12:00:01Z",
        "until": "2024-05-01T14:00:03+02:00",
    }  # 12:00:01 <= t < 12:00:03
    assert ids(client.get("/events", params=window).json()) == ["ev002", "ev001"]
    naive = {"since": "2024-05-01T12:00:02"}  # no offset: UTC
    assert ids(client.get("/events", params=naive).json()) == ["ev003", "ev002"]
    assert client.get("/events/count", params={"class": "person"}).json() == {"count": 3}


def test_cursor_pagination_walks_everything_once(client: TestClient, parts: Parts) -> None:
    parts.store.apply_many(start(make_event(i, start_time=T0 + timedelta(seconds=i // 3))) for i in range(23))
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 5} | ({"cursor": cursor} if cursor else {})
        body = client.get("/events", params=params).json()
        seen += ids(body)
        cursor = body["next_cursor"]
        if cursor is None:
            break
        # An event arriving mid-walk is newer than the cursor: it does not disturb later pages.
        parts.store.apply(start(make_event(100 + len(seen), start_time=T0 + timedelta(hours=1))))
    assert len(seen) == 23 and len(set(seen)) == 23
    expected = sorted((f"ev{i:03d}" for i in range(23)), key=lambda e: (int(e[2:]) // 3, e), reverse=True)
    assert seen == expected


@pytest.mark.parametrize(
    "params, field",
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2024-13-01T00:00:00Z"}, "until"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"type": "alien_landing"}, "type"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "eyJhIjoxfQ"}, "cursor"),  # valid base64 JSON, but not ours
        ({"active": "maybe"}, "active"),
        ({"since": "2024-05-02T00:00:00Z", "until": "2024-05-01T00:00:00Z"}, "until"),
    ],
)
def test_malformed_queries_are_422_naming_the_field(client: TestClient, params: dict, field: str) -> None:
    r = client.get("/events", params=params)
    assert r.status_code == 422, r.text
    assert [d["loc"] for d in r.json()["detail"]] == [["query", field]]


def test_get_one_and_404(client: TestClient, parts: Parts) -> None:
    seed(parts)
    r = client.get("/events/ev002")
    assert r.status_code == 200 and r.json()["classes"] == ["car", "person"]
    r = client.get("/events/does-not-exist")
    assert r.status_code == 404 and "does-not-exist" in r.json()["detail"]


def test_event_reflects_transitions(client: TestClient, parts: Parts) -> None:
    ev = make_event(7)
    parts.store.apply(start(ev))
    ended = ev.model_copy(update={"active": False, "end_time": T0 + timedelta(minutes=2)})
    from events.model import EventTransition

    parts.store.apply(EventTransition(phase=Phase.END, event=ended))
    body = client.get("/events/ev007").json()
    assert body["active"] is False and body["end_time"] == "2024-05-01T12:02:00Z"


def test_openapi_docs(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    for path in [
        "/events",
        "/events/{event_id}",
        "/events/{event_id}/snapshot",
        "/events/stream",
        "/traffic",
        "/cameras",
        "/metrics",
        "/healthz",
    ]:
        assert path in spec["paths"], path
