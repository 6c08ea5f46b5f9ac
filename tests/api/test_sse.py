"""``GET /events/stream`` over a real uvicorn server on 127.0.0.1, read by an httpx streaming client."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn

from events.model import EventTransition, EventType, Phase
from tests.api.support import Parts, login, make_event
from tests.conftest_s3 import free_ports


@dataclass
class Message:
    event: str | None = None
    id: str | None = None
    data: Any = None
    comments: list[str] = field(default_factory=list)
    retry: int | None = None
    at: float = 0.0


class Reader:
    """Reads one SSE response on a thread; parsed messages (with arrival time) land in a queue."""

    def __init__(self, client: httpx.Client, url: str, **kw: Any) -> None:
        self.messages: queue.Queue[Message] = queue.Queue()
        self._cm = client.stream("GET", url, **kw)
        self.response = self._cm.__enter__()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        msg = Message()
        try:
            for line in self.response.iter_lines():
                if line == "":
                    msg.at = time.perf_counter()
                    self.messages.put(msg)
                    msg = Message()
                elif line.startswith(":"):
                    msg.comments.append(line[1:].strip())
                else:
                    name, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if name == "data":
                        msg.data = json.loads(value)
                    elif name == "retry":
                        msg.retry = int(value)
                    else:
                        setattr(msg, name, value)
        except httpx.HTTPError:
            pass  # closed by the test

    def next(self, timeout: float = 2.0, skip_comments: bool = True) -> Message:
        deadline = time.monotonic() + timeout
        while True:
            msg = self.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            if not (skip_comments and msg.event is None and msg.data is None):
                return msg

    def close(self) -> None:
        self._cm.__exit__(None, None, None)
        self._thread.join(2)


@contextmanager
def live_server(parts: Parts, **app_kw: Any) -> Iterator[str]:
    (port,) = free_ports(1)
    config = uvicorn.Config(
        parts.app(**app_kw),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(5)


def tr(
    i: int, phase: Phase, camera: str = "cam1", type: EventType = EventType.ZONE_INTRUSION
) -> EventTransition:
    ev = make_event(i, camera=camera, type=type, active=phase is not Phase.END)
    return EventTransition(phase=phase, event=ev)


def wait_for(predicate: Any, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_transitions_arrive_live_in_order_and_filtered(parts: Parts) -> None:
    with live_server(parts, heartbeat_s=0.2) as url, httpx.Client(timeout=5) as client:
        login(client, base=url)
        reader = Reader(client, f"{url}/events/stream", params={"camera": "cam1"})
        try:
            assert reader.response.status_code == 200
            assert reader.response.headers["content-type"].startswith("text/event-stream")
            assert reader.response.headers["cache-control"] == "no-cache"
            hello = reader.next(skip_comments=False)
            assert hello.retry == 3000 and "connected" in hello.comments
            assert wait_for(lambda: parts.bus.stats().subscribers == 1)

            sent = [
                tr(1, Phase.START),
                tr(2, Phase.START, camera="cam2"),  # filtered out
                tr(1, Phase.UPDATE),
                tr(3, Phase.START, type=EventType.LOITERING),
                tr(1, Phase.END),
            ]
            published_at = []
            for t in sent:
                published_at.append(time.perf_counter())
                parts.bus.publish(t)
                time.sleep(0.02)
            got = [reader.next() for _ in range(4)]
            assert [(m.event, m.data["event_id"]) for m in got] == [
                ("start", "ev001"),
                ("update", "ev001"),
                ("start", "ev003"),
                ("end", "ev001"),
            ]
            for m, t0 in zip(got, [published_at[i] for i in (0, 2, 3, 4)], strict=True):
                assert m.at - t0 < 1.0, "transition not delivered live"
            first = got[0]
            assert first.id == first.data["id"] and first.id.startswith(parts.bus.bus_id)
            assert first.data["phase"] == "start" and first.data["event"]["camera"] == "cam1"
            assert got[-1].data["event"]["active"] is False
            # Idle: heartbeats keep the connection alive.
            ping = reader.next(timeout=2, skip_comments=False)
            assert "ping" in ping.comments
        finally:
            reader.close()
        # The client left: the server notices and drops its subscription.
        assert wait_for(lambda: parts.bus.stats().subscribers == 0), parts.bus.stats()


def test_type_filter_and_resume_with_last_event_id(parts: Parts) -> None:
    with live_server(parts, heartbeat_s=0.2) as url, httpx.Client(timeout=5) as client:
        login(client, base=url)
        before = parts.bus.publish(tr(1, Phase.START))
        missed = [
            parts.bus.publish(tr(i, Phase.START, type=t))
            for i, t in [(2, EventType.LOITERING), (3, EventType.CROWDING)]
        ]
        reader = Reader(
            client,
            f"{url}/events/stream",
            params=[("type", "loitering"), ("type", "crowding")],
            headers={"Last-Event-ID": before.id},
        )
        try:
            replayed = [reader.next(), reader.next()]
            assert [m.id for m in replayed] == [m.id for m in missed]
            parts.bus.publish(tr(4, Phase.START))  # zone_intrusion: filtered out
            parts.bus.publish(tr(5, Phase.END, type=EventType.CROWDING))
            m = reader.next()
            assert (m.event, m.data["event_id"]) == ("end", "ev005")
        finally:
            reader.close()


def test_unknown_last_event_id_reports_a_gap(parts: Parts) -> None:
    with live_server(parts, heartbeat_s=0.2) as url, httpx.Client(timeout=5) as client:
        login(client, base=url)
        reader = Reader(client, f"{url}/events/stream", headers={"Last-Event-ID": "feedbeef-41"})
        try:
            parts.bus.publish(tr(1, Phase.START))
            gap = reader.next()
            assert gap.event == "gap" and gap.data == {"missed": None}
            assert reader.next().event == "start"
        finally:
            reader.close()


@pytest.mark.parametrize("params", [{"type": "nope"}])
def test_stream_rejects_bad_filters(parts: Parts, params: dict) -> None:
    from fastapi.testclient import TestClient

    with TestClient(parts.app()) as c:
        login(c)
        r = c.get("/events/stream", params=params)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][:2] == ["query", "type"]
