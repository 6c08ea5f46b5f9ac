"""MQTT publishing with paho-mqtt 2.x.

Topics (``<prefix>`` is ``publish.mqtt.topic_prefix``, default ``khupho``):

- ``<prefix>/available``: ``online`` / ``offline`` (retained; ``offline`` is the last will);
- ``<prefix>/events``: every event transition as ``{"type": "new"|"update"|"end", "before", "after"}``
  (Frigate's shape; ``before`` is null for ``new``), QoS ``qos``, not retained;
- ``<prefix>/traffic/<segment id>``: the segment's state as ``/public/traffic`` shows it
  (level, speed, age, healthy share...), retained, sent when it changes and again after every
  reconnect (a restarted broker has forgotten it);
- ``<prefix>/traffic/<segment id>/level``: just the DATEX II level word, retained.

Nothing here runs on a camera thread: events come from a bounded event-bus
subscription, segment states from the traffic board's latest-value feed, both
drained by one publisher thread. While the broker is down that thread does not
drain, so the subscription drops its oldest events (counted as ``dropped``); a
publish that paho refuses is counted as ``failed``. paho reconnects by itself
with a backoff between ``reconnect_min_s`` and ``reconnect_max_s``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from events.congestion import TrafficBoard, TrafficState
from events.feed import FeedSubscription
from events.publish.config import MqttConfig
from events.publish.payloads import EventPayloads, SegmentChanges
from events.storage.bus import EventBus, Subscription

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MqttStats:
    connected: bool
    connects: int  # successful connections, the first included
    sent: int  # handed to paho while connected
    acked: int  # confirmed by the broker (QoS 1/2) or written to the socket (QoS 0)
    dropped: int  # events discarded while waiting (broker down or slow)
    failed: int  # publishes paho refused
    last_error: str | None


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


class MqttPublisher:
    """Publishes events and segment states to one broker; ``start()`` / ``close()``."""

    def __init__(self, config: MqttConfig, bus: EventBus, board: TrafficBoard | None = None) -> None:
        self.config = config
        self.prefix = config.topic_prefix
        types = frozenset(config.event_types)
        self._events: Subscription = bus.subscribe(
            name="mqtt",
            maxsize=config.queue_size,
            accept=(lambda t: t.event.type in types) if types else None,
        )
        self._board = board
        self._states: FeedSubscription[TrafficState] | None = board.feed.subscribe() if board else None
        self._payloads = EventPayloads()
        self._segments = SegmentChanges()
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._resend = threading.Event()
        self._stop = threading.Event()
        self._connects = self._sent = self._acked = self._failed = 0
        self._last_error: str | None = None
        self.client = self._make_client()
        self._thread = threading.Thread(target=self._run, name="mqtt-publisher", daemon=True)

    def _make_client(self) -> mqtt.Client:
        c = self.config
        client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=c.client_id,
            protocol=mqtt.MQTTv311,
        )
        if c.username is not None:
            client.username_pw_set(c.username, c.password.get_secret_value() if c.password else None)
        if c.tls:
            client.tls_set()
        client.will_set(f"{self.prefix}/available", "offline", qos=1, retain=True)
        client.reconnect_delay_set(
            min_delay=max(1, round(c.reconnect_min_s)), max_delay=round(c.reconnect_max_s)
        )
        client.max_queued_messages_set(c.queue_size)  # paho's own buffer stays bounded too
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    # -- paho callbacks (paho's network thread) ------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self._last_error = f"connection refused: {reason}"
            log.warning(
                "MQTT broker %s:%d refused the connection: %s", self.config.host, self.config.port, reason
            )
            return
        with self._lock:
            self._connects += 1
        self._last_error = None
        client.publish(f"{self.prefix}/available", "online", qos=1, retain=True)
        self._resend.set()  # the broker may have restarted and forgotten the retained states
        self._connected.set()
        log.info("MQTT connected to %s:%d", self.config.host, self.config.port)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        if was_connected and not self._stop.is_set():  # a refused connection keeps its own reason
            self._last_error = f"disconnected: {reason}"
            log.warning(
                "MQTT broker %s:%d lost (%s); reconnecting", self.config.host, self.config.port, reason
            )

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._lock:
            self._acked += 1

    # -- running ---------------------------------------------------------------------------------

    def start(self) -> MqttPublisher:
        self.client.connect_async(self.config.host, self.config.port, keepalive=self.config.keepalive_s)
        self.client.loop_start()
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._connected.wait(0.2):
                continue  # the bus subscription keeps only the newest queue_size events meanwhile
            if self._resend.is_set():
                self._resend.clear()
                self._segments.forget()
                if self._board is not None:
                    self._publish_segments(self._board.latest)
            try:
                message = self._events.get_blocking(timeout=0.2)
            except Exception:  # the bus closed
                message = None
                self._stop.wait(0.2)
            if message is not None:
                self._send("events", self._payloads.payload(message.transition), retain=False)
            if self._states is not None:
                try:
                    state = self._states.get_nowait()
                except Exception:
                    state = None
                if state is not None:
                    self._publish_segments(state.value)

    def _publish_segments(self, state: TrafficState) -> None:
        for seg in self._segments.changed(state.segments()):
            self._send(f"traffic/{seg['id']}", seg, retain=True)
            self._send(f"traffic/{seg['id']}/level", seg["level"], retain=True)

    def _send(self, topic: str, payload: Any, *, retain: bool) -> None:
        body = payload.encode() if isinstance(payload, str) else _dumps(payload)
        info = self.client.publish(f"{self.prefix}/{topic}", body, qos=self.config.qos, retain=retain)
        with self._lock:
            if info.rc == mqtt.MQTT_ERR_SUCCESS:
                self._sent += 1
            else:
                self._failed += 1

    def stats(self) -> MqttStats:
        with self._lock:
            return MqttStats(
                connected=self._connected.is_set(),
                connects=self._connects,
                sent=self._sent,
                acked=self._acked,
                dropped=self._events.dropped,
                failed=self._failed,
                last_error=self._last_error,
            )

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        self._events.close()
        if self._states is not None:
            self._states.close()
        if self._connected.is_set():
            info = self.client.publish(f"{self.prefix}/available", "offline", qos=1, retain=True)
            deadline = time.monotonic() + 1.0
            while not info.is_published() and time.monotonic() < deadline:
                time.sleep(0.02)
        self.client.disconnect()
        self.client.loop_stop()
