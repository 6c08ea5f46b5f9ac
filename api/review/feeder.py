"""Feeds stored event transitions from the bus into the review store, on a thread of its own."""

from __future__ import annotations

import logging
import threading

from api.review.store import ReviewStore
from events.model import EventTransition
from events.storage.bus import EventBus, SubscriptionClosed
from events.storage.store import StorageError

log = logging.getLogger(__name__)


class ReviewFeeder:
    def __init__(self, bus: EventBus, review: ReviewStore) -> None:
        self.review = review
        # Subscribed at construction, so nothing published between here and start() is missed.
        self._sub = bus.subscribe(name="review", maxsize=10_000)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="review-feeder", daemon=True)

    def start(self) -> ReviewFeeder:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._sub.close()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                message = self._sub.get_blocking(timeout=0.5)
            except SubscriptionClosed:
                return
            if message is None:
                continue
            gap = self._sub.take_gap()
            if gap is not None:
                log.error("review feeder fell behind: %s transitions were not filed", gap.missed)
            self._file(message.transition)

    def _file(self, transition: EventTransition) -> None:
        """File one transition; while the database is away (PostgreSQL restarting), retry it every
        second rather than drop it: the subscription keeps what arrives meanwhile."""
        waited = False
        while not self._stop.is_set():
            try:
                self.review.ingest(transition)
                if waited:
                    log.info("review feeder: the database is back")
                return
            except StorageError as exc:
                if not waited:
                    log.warning("review feeder waits for the database: %s", exc)
                waited = True
                self._stop.wait(1.0)
            except Exception:
                log.exception("event %s not filed for review", transition.event.id)
                return
