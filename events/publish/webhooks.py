"""Webhooks: events and segment level changes POSTed as JSON, signed, retried with backoff.

Each delivery is ``POST <url>`` with a JSON body and the headers

- ``X-Khupho-Signature: t=<unix seconds>,v1=<hex>``, where ``<hex>`` is
  HMAC-SHA256 with the webhook's ``secret`` over ``"<t>.<body>"`` (the receiver
  recomputes it and rejects old ``t`` to stop replays);
- ``X-Khupho-Event``: ``event`` or ``traffic_level``;
- ``X-Khupho-Delivery``: an id that stays the same across retries (to deduplicate).

Bodies: ``{"kind": "event", "type": "new"|"update"|"end", "before", "after"}``
(as on MQTT) and ``{"kind": "traffic_level", "segment": {...}}``.

A 2xx answer delivers; a timeout, a connection error, 408, 429 or 5xx is retried
up to ``max_attempts`` with exponential backoff (``backoff_initial_s`` doubling up
to ``backoff_max_s``) and jitter (a random 50-100 % of the step, so many nodes do
not retry in lockstep); any other 4xx fails at once. Each webhook has its own
sender thread and a bounded queue (its event-bus subscription): while a target
is down the oldest waiting events are dropped, never a camera slowed. Every
outcome is counted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from events.congestion import TrafficBoard, TrafficState
from events.feed import FeedSubscription
from events.publish.config import WebhookConfig
from events.publish.payloads import EventPayloads, SegmentChanges
from events.storage.bus import EventBus, Subscription

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Khupho-Signature"
RETRY_STATUSES = frozenset({408, 429})


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(
    secret: bytes, header: str, body: bytes, *, now: float | None = None, tolerance_s: float = 300
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` and is recent (for receivers and tests)."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), header)


@dataclass(frozen=True, slots=True)
class WebhookStats:
    delivered: int
    retried: int  # attempts after the first
    failed: int  # given up after max_attempts or refused with a 4xx
    dropped: int  # waiting too long: discarded from the full queue
    last_error: str | None


def backoff_delay(attempt: int, initial: float, maximum: float, rng: random.Random) -> float:
    """Delay before retry number ``attempt`` (1-based): doubling, capped, 50-100 % of the step."""
    step = min(maximum, initial * 2 ** (attempt - 1))
    return step * (0.5 + 0.5 * rng.random())


class WebhookSender:
    """Delivers to one webhook URL from its own thread; ``start()`` / ``close()``."""

    def __init__(self, config: WebhookConfig, bus: EventBus, board: TrafficBoard | None = None) -> None:
        self.config = config
        self.url = str(config.url)
        self._secret = config.secret.get_secret_value().encode()
        types = frozenset(config.event_types)
        self._events: Subscription = bus.subscribe(
            name=f"webhook {httpx.URL(self.url).host}",
            maxsize=config.queue_size,
            accept=(lambda t: t.event.type in types) if types else None,
        )
        self._states: FeedSubscription[TrafficState] | None = (
            board.feed.subscribe() if board is not None and config.traffic_levels else None
        )
        self._payloads = EventPayloads()
        self._levels = SegmentChanges(levels_only=True)
        self._first_state = True
        self._rng = random.Random()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._delivered = self._retried = self._failed = 0
        self._last_error: str | None = None
        self._client = httpx.Client(timeout=config.timeout_s, follow_redirects=False)
        self._thread = threading.Thread(target=self._run, name="webhook-sender", daemon=True)

    def start(self) -> WebhookSender:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                message = self._events.get_blocking(timeout=0.2)
            except Exception:
                message = None
                self._stop.wait(0.2)
            if message is not None:
                body = {"kind": "event", **self._payloads.payload(message.transition)}
                self._deliver("event", body)
            if self._states is not None:
                try:
                    state = self._states.get_nowait()
                except Exception:
                    state = None
                if state is not None:
                    changed = self._levels.changed(state.value.segments())
                    if self._first_state:  # the levels at start-up are not changes
                        self._first_state = False
                        continue
                    for seg in changed:
                        self._deliver("traffic_level", {"kind": "traffic_level", "segment": seg})

    def _deliver(self, kind: str, payload: dict[str, Any]) -> bool:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        delivery = uuid.uuid4().hex
        for attempt in range(1, self.config.max_attempts + 1):
            if attempt > 1:
                with self._lock:
                    self._retried += 1
                delay = backoff_delay(
                    attempt - 1, self.config.backoff_initial_s, self.config.backoff_max_s, self._rng
                )
                if self._stop.wait(delay):
                    break
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "khupho-webhook/1",
                SIGNATURE_HEADER: sign(self._secret, int(time.time()), body),
                "X-Khupho-Event": kind,
                "X-Khupho-Delivery": delivery,
            }
            try:
                response = self._client.post(self.url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                self._note_error(f"{type(exc).__name__}")
                continue
            if 200 <= response.status_code < 300:
                with self._lock:
                    self._delivered += 1
                return True
            self._note_error(f"HTTP {response.status_code}")
            if response.status_code < 500 and response.status_code not in RETRY_STATUSES:
                break  # the target refuses this message: retrying will not help
        with self._lock:
            self._failed += 1
        return False

    def _note_error(self, error: str) -> None:
        # The URL may carry a token in its query: log the host only.
        host = httpx.URL(self.url).host
        with self._lock:
            self._last_error = error
        log.warning("webhook %s: %s", host, error)

    def stats(self) -> WebhookStats:
        with self._lock:
            return WebhookStats(
                delivered=self._delivered,
                retried=self._retried,
                failed=self._failed,
                dropped=self._events.dropped,
                last_error=self._last_error,
            )

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        self._events.close()
        if self._states is not None:
            self._states.close()
        self._client.close()
