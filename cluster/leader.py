"""One API process of many does a job: the holder of a PostgreSQL session advisory lock.

In cluster mode every API replica receives every transition from the shared feed, but MQTT messages
and webhooks must go out once, not once per replica. The replica holding the lock runs the
publishers. When it stops, its session ends and another replica takes over within ``interval_s``;
when its host crashes or is cut off, PostgreSQL releases the lock only once it notices the session
is gone (TCP keepalive: set ``tcp_keepalives_idle`` on the server to bound it). Transitions stored
while no replica holds the lock are not published by the next holder (it subscribes when it takes
over): publishing is at-most-once across a hand-over, at-least-once otherwise (MQTT QoS 1, webhook
retries). The events themselves are in the database and on every replica's SSE stream regardless.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from events.storage.postgres import PostgresEventStore

log = logging.getLogger(__name__)


class Leadership:
    """Calls ``on_gain`` when this process takes the lock named ``job``, ``on_loss`` when it loses it."""

    def __init__(
        self,
        store: PostgresEventStore,
        job: str,
        *,
        on_gain: Callable[[], None],
        on_loss: Callable[[], None],
        interval_s: float = 2.0,
    ) -> None:
        self.store = store
        self.job = job
        self.on_gain = on_gain
        self.on_loss = on_loss
        self.interval_s = interval_s
        self.held = False
        self._conn: Any = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"leader-{job}", daemon=True)

    def start(self) -> Leadership:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._round()
            except Exception as exc:  # the session is gone: so is the lock
                log.warning("%s: database session lost (%s)", self.job, self.store.scrub(str(exc)))
                self._drop()
            self._stop.wait(self.interval_s)
        self._drop()

    def _round(self) -> None:
        if self._conn is None:
            self._conn = self.store.dedicated_connection(f"khupho-{self.job}")
        if self.held:
            self._conn.execute("SELECT 1")  # still our session, so still our lock
            return
        row = self._conn.execute("SELECT pg_try_advisory_lock(hashtext('khupho'), hashtext(%s))", (self.job,))
        if row.fetchone()[0]:
            self.held = True
            log.info("this process now runs %s for the cluster", self.job)
            try:
                self.on_gain()
            except Exception:  # e.g. a broker that refuses: let another replica try
                log.exception("%s: could not start here; releasing the lock", self.job)
                self._drop()

    def _drop(self) -> None:
        if self.held:
            self.held = False
            log.warning("this process no longer runs %s", self.job)
            try:
                self.on_loss()
            except Exception:
                log.exception("%s: stopping after the lock was lost", self.job)
        if self._conn is not None:
            try:
                self._conn.close()  # ends the session: the lock is released at once
            except Exception as exc:
                log.debug("closing the %s session: %s", self.job, exc)
            self._conn = None

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
