"""Webhooks against a real HTTP server on 127.0.0.1: signature, retries with backoff, counted failures."""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import pytest

from events.congestion import TrafficBoard
from events.lanes import LaneLive, TrafficOutput
from events.model import Event, EventTransition, EventType, Phase
from events.publish.config import WebhookConfig
from events.publish.webhooks import SIGNATURE_HEADER, WebhookSender, backoff_delay, sign, verify
from events.storage.bus import EventBus
from events.traffic_config import TrafficConfig
from tests.api.support import T0

SECRET = "webhook-secret-0123456789"


class Receiver:
    """Answers with the next status of ``script`` (then 200) and records every request."""

    def __init__(self, script: list[int] | None = None) -> None:
        self.script = list(script or [])
        self.requests: list[tuple[float, dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((time.monotonic(), dict(self.headers), body))
                status = receiver.script.pop(0) if receiver.script else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook?token=abc"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, n: int, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.requests) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return len(self.requests) >= n

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def event(i: int = 1) -> Event:
    return Event(
        camera="cam",
        rule="shoulder",
        type=EventType.STOPPED_VEHICLE,
        start_pts=0,
        start_time=T0,
        track_ids=[i],
    )


def sender(url: str, bus: EventBus, board: TrafficBoard | None = None, **kw) -> WebhookSender:  # type: ignore[no-untyped-def]
    cfg = WebhookConfig(url=url, secret=SECRET, backoff_initial_s=0.1, backoff_max_s=0.4, timeout_s=2, **kw)
    return WebhookSender(cfg, bus, board).start()


def test_signed_delivery(receiver: Receiver) -> None:
    bus = EventBus()
    s = sender(receiver.url, bus)
    try:
        bus.publish(EventTransition(phase=Phase.START, event=event()))
        assert receiver.wait(1)
        _, headers, body = receiver.requests[0]
        assert verify(SECRET.encode(), headers[SIGNATURE_HEADER], body)
        assert not verify(b"another-secret-123456", headers[SIGNATURE_HEADER], body)
        assert not verify(SECRET.encode(), headers[SIGNATURE_HEADER], body + b" ")  # tampered
        payload = json.loads(body)
        assert (
            payload["kind"] == "event"
            and payload["type"] == "new"
            and payload["after"]["type"] == "stopped_vehicle"
        )
        assert headers["X-Khupho-Event"] == "event" and len(headers["X-Khupho-Delivery"]) == 32
        assert s.stats().delivered == 1
    finally:
        s.close()


def test_old_signatures_are_rejected() -> None:
    header = sign(b"k" * 16, 1_000, b"{}")
    assert verify(b"k" * 16, header, b"{}", now=1_100)
    assert not verify(b"k" * 16, header, b"{}", now=1_000 + 301)
    assert not verify(b"k" * 16, "garbage", b"{}")


def test_retries_with_backoff_then_delivers() -> None:
    receiver = Receiver(script=[503, 500, 429])
    bus = EventBus()
    s = sender(receiver.url, bus)
    try:
        bus.publish(EventTransition(phase=Phase.START, event=event()))
        assert receiver.wait(4)
        times = [t for t, _, _ in receiver.requests]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        # Backoff 0.1, 0.2, 0.4 s, each 50-100 % of its step.
        for gap, step in zip(gaps, (0.1, 0.2, 0.4), strict=True):
            assert 0.5 * step - 0.01 <= gap <= step + 0.2
        deliveries = {h["X-Khupho-Delivery"] for _, h, _ in receiver.requests}
        assert len(deliveries) == 1  # one delivery id across its retries
        time.sleep(0.1)
        st = s.stats()
        assert (st.delivered, st.retried, st.failed) == (1, 3, 0)
    finally:
        s.close()
        receiver.close()


def test_a_refusing_target_fails_at_once_and_a_dead_one_after_max_attempts() -> None:
    refusing = Receiver(script=[403])
    bus = EventBus()
    s = sender(refusing.url, bus)
    try:
        bus.publish(EventTransition(phase=Phase.START, event=event()))
        assert refusing.wait(1)
        time.sleep(0.3)
        assert len(refusing.requests) == 1 and s.stats().failed == 1
    finally:
        s.close()
        refusing.close()
    dead_url = refusing.url  # its server is closed now: connection refused
    s = sender(dead_url, bus, max_attempts=3, queue_size=2)
    try:
        t0 = time.perf_counter()
        for i in range(10):
            bus.publish(EventTransition(phase=Phase.START, event=event(i)))
        assert time.perf_counter() - t0 < 0.05  # producers never wait for the target
        deadline = time.monotonic() + 10
        while s.stats().failed + s.stats().dropped < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        st = s.stats()
        # The sender may have taken the first event before the rest arrived: 2 or 3 attempted.
        assert st.failed + st.dropped == 10 and st.failed in (2, 3) and st.delivered == 0
        assert st.last_error == "ConnectError" and "abc" not in st.last_error
    finally:
        s.close()


def test_segment_level_changes_are_sent(receiver: Receiver) -> None:
    config = TrafficConfig.model_validate(
        {
            "segments": [{"id": "dbp", "name": "Điện Biên Phủ", "lanes": ["cam/up"]}],
            "congestion": {"hold_s": 0},
        }
    )
    board = TrafficBoard(config, {"cam": ["up"]}, ZoneInfo("Asia/Ho_Chi_Minh"))

    def speed(kmh: float) -> None:
        board.report(
            camera="cam",
            output=TrafficOutput([], [], [], [LaneLive("cam", "up", time.time(), kmh, 50.0, 0.3, 2)]),
        )
        board.tick()

    speed(45.0)
    bus = EventBus()
    s = sender(receiver.url, bus, board, event_types=[EventType.WRONG_WAY])
    try:
        time.sleep(0.5)  # the level at start-up is not a change
        speed(44.0)  # same level: nothing
        speed(2.0)
        assert receiver.wait(1)
        bus.publish(EventTransition(phase=Phase.START, event=event()))  # filtered out by event_types
        time.sleep(0.5)
        assert len(receiver.requests) == 1
        payload = json.loads(receiver.requests[0][2])
        assert payload["kind"] == "traffic_level" and payload["segment"]["level"] == "stationary"
    finally:
        s.close()
        board.stop()


def test_backoff_delay_is_capped_and_jittered() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(a, 1.0, 8.0, rng) for a in range(1, 8)]
    for attempt, d in enumerate(delays, start=1):
        step = min(8.0, 2 ** (attempt - 1))
        assert 0.5 * step <= d <= step
    assert len({round(backoff_delay(3, 1.0, 8.0, rng), 6) for _ in range(20)}) > 1
