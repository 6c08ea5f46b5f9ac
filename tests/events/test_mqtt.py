"""MQTT publishing against a real Mosquitto broker: documented topics, authentication, a broker restart."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import pytest

from events.congestion import TrafficBoard
from events.lanes import LaneLive, TrafficOutput
from events.model import Event, EventTransition, EventType, Phase
from events.publish.config import MqttConfig
from events.publish.mqtt import MqttPublisher
from events.storage.bus import EventBus
from events.traffic_config import TrafficConfig
from tests.api.support import T0
from tests.events.mosquitto import Mosquitto

USER, PASSWORD = "khupho", "mqtt-s3cret"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    server = Mosquitto(tmp_path / "mosquitto", USER, PASSWORD).start()
    yield server
    server.kill()


class Listener:
    """A separate MQTT client collecting everything under khupho/#."""

    def __init__(self, port: int) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=f"t{time.time_ns()}"
        )
        self.client.username_pw_set(USER, PASSWORD)
        self.client.on_connect = lambda c, *a: c.subscribe("khupho/#", qos=1)
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload, bool(m.retain)))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def wait(self, check: Callable[[list[tuple[str, bytes, bool]]], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check(list(self.messages)):
                return True
            time.sleep(0.05)
        return False

    def on(self, topic: str) -> list[bytes]:
        return [p for t, p, _ in list(self.messages) if t == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def make_board() -> TrafficBoard:
    config = TrafficConfig.model_validate(
        {"segments": [{"id": "dbp", "name": "Điện Biên Phủ", "lanes": ["cam/up"]}]}
    )
    board = TrafficBoard(config, {"cam": ["up"]}, ZoneInfo("Asia/Ho_Chi_Minh"))
    board.report(
        camera="cam",
        output=TrafficOutput([], [], [], [LaneLive("cam", "up", time.time(), 20.0, 50.0, 0.3, 2)]),
    )
    return board


def wrong_way(i: int) -> Event:
    return Event(
        camera="cam", rule="up", type=EventType.WRONG_WAY, start_pts=float(i), start_time=T0, track_ids=[i]
    )


def config(port: int, **kw) -> MqttConfig:  # type: ignore[no-untyped-def]
    return MqttConfig(port=port, username=USER, password=PASSWORD, reconnect_min_s=1, reconnect_max_s=1, **kw)


def test_events_and_segment_state_on_the_documented_topics(broker: Mosquitto) -> None:
    bus, board = EventBus(), make_board()
    board.tick()
    listener = Listener(broker.port)
    publisher = MqttPublisher(config(broker.port), bus, board).start()
    try:
        assert listener.wait(lambda m: any(t == "khupho/available" and p == b"online" for t, p, _ in m))
        ev = wrong_way(1)
        bus.publish(EventTransition(phase=Phase.START, event=ev))
        bus.publish(EventTransition(phase=Phase.UPDATE, event=ev.model_copy(update={"score": 0.8})))
        bus.publish(EventTransition(phase=Phase.END, event=ev.model_copy(update={"active": False})))
        assert listener.wait(lambda m: len([1 for t, _, _ in m if t == "khupho/events"]) == 3)
        new, update, end = (json.loads(p) for p in listener.on("khupho/events"))
        assert (new["type"], update["type"], end["type"]) == ("new", "update", "end")
        assert new["before"] is None and new["after"]["id"] == ev.id and new["after"]["type"] == "wrong_way"
        assert update["before"]["score"] == 0.0 and update["after"]["score"] == 0.8
        assert end["before"]["score"] == 0.8 and end["after"]["active"] is False
        # Segment state is retained: a client connecting later gets it at once.
        assert listener.wait(lambda m: any(t == "khupho/traffic/dbp" for t, _, _ in m))
        late = Listener(broker.port)
        try:
            assert late.wait(lambda m: any(t == "khupho/traffic/dbp/level" and r for t, _, r in m))
            seg = json.loads(late.on("khupho/traffic/dbp")[0])
            assert seg["name"] == "Điện Biên Phủ" and seg["level"] == "congested" and seg["speed_kmh"] == 20.0
            assert late.on("khupho/traffic/dbp/level") == [b"congested"]
        finally:
            late.close()
        stats = publisher.stats()
        assert stats.connected and stats.dropped == 0 and stats.failed == 0 and stats.sent >= 5
    finally:
        publisher.close()
        listener.close()
        board.stop()


def test_a_wrong_password_is_refused_and_waiting_events_are_bounded(broker: Mosquitto) -> None:
    bus = EventBus()
    cfg = MqttConfig(port=broker.port, username=USER, password="wrong", queue_size=5, reconnect_min_s=1)
    publisher = MqttPublisher(cfg, bus).start()
    try:
        deadline = time.monotonic() + 10
        while publisher.stats().last_error is None and time.monotonic() < deadline:
            time.sleep(0.05)
        stats = publisher.stats()
        assert not stats.connected and "refused" in (stats.last_error or "")
        assert "wrong" not in (stats.last_error or "")  # the secret is never echoed
        for i in range(20):
            bus.publish(EventTransition(phase=Phase.START, event=wrong_way(i)))
        assert publisher.stats().dropped == 15  # the 5 newest wait, the rest are counted
    finally:
        publisher.close()


@pytest.mark.slow
def test_broker_killed_and_restarted_publishing_resumes_and_producers_never_wait(broker: Mosquitto) -> None:
    bus, board = EventBus(), make_board()
    board.tick()
    publisher = MqttPublisher(config(broker.port, queue_size=50), bus, board).start()
    listener = Listener(broker.port)
    worst = [0.0]
    stop = threading.Event()

    def camera() -> None:  # a stand-in for a camera thread: publishes to the bus at 50 Hz
        i = 0
        while not stop.is_set():
            t0 = time.perf_counter()
            bus.publish(EventTransition(phase=Phase.START, event=wrong_way(i)))
            worst[0] = max(worst[0], time.perf_counter() - t0)
            i += 1
            time.sleep(0.02)

    producer = threading.Thread(target=camera)
    producer.start()
    try:
        assert listener.wait(lambda m: any(t == "khupho/events" for t, _, _ in m))
        listener.close()
        broker.kill()
        time.sleep(3.0)  # 150 events while the broker is gone; the queue keeps 50
        assert not publisher.stats().connected
        broker.start()
        listener = Listener(broker.port)
        # Publishing resumes, and the restarted broker gets the retained segment state again.
        assert listener.wait(lambda m: any(t == "khupho/events" for t, _, _ in m), timeout=15)
        assert listener.wait(lambda m: any(t == "khupho/traffic/dbp" for t, _, _ in m), timeout=5)
        late = Listener(broker.port)
        assert late.wait(lambda m: any(t == "khupho/traffic/dbp" and r for t, _, r in m), timeout=5)
        late.close()
        stats = publisher.stats()
        assert stats.connected and stats.connects >= 2 and stats.dropped > 0
    finally:
        stop.set()
        producer.join()
        publisher.close()
        listener.close()
        board.stop()
    assert worst[0] < 0.05, f"a bus publish took {worst[0] * 1000:.1f} ms"
