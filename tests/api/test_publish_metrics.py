"""Publisher counters reach /metrics: an MQTT publisher whose broker is down counts what it drops."""

from __future__ import annotations

import time

from api.metrics import KhuphoMetrics
from events.model import Event, EventTransition, EventType, Phase
from events.publish.config import MqttConfig
from events.publish.mqtt import MqttPublisher
from events.storage.bus import EventBus
from tests.api.support import T0
from tests.events.mosquitto import free_port


def test_undelivered_messages_are_counted_in_metrics() -> None:
    bus, metrics = EventBus(), KhuphoMetrics()
    publisher = MqttPublisher(MqttConfig(port=free_port(), queue_size=3), bus).start()  # nothing listens
    metrics.watch_publisher("mqtt", publisher.stats)
    try:
        t0 = time.perf_counter()
        for i in range(10):
            ev = Event(camera="c", rule="r", type=EventType.WRONG_WAY, start_pts=i, start_time=T0)
            bus.publish(EventTransition(phase=Phase.START, event=ev))
        assert time.perf_counter() - t0 < 0.05  # the producer never waits for the broker
        text = metrics.render().decode()
        assert 'khupho_publish_messages_total{outcome="dropped",publisher="mqtt"} 7.0' in text
        assert 'khupho_publish_connected{publisher="mqtt"} 0.0' in text
    finally:
        publisher.close()
