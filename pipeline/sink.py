"""Where a camera's results go: the event store, the live bus, snapshots and traffic counts.

Nothing is dropped when storage hiccups: transitions and counts that could not
be written are kept in order and written before anything newer, and the bus
only publishes what has been stored, so the live feed never shows an event the
API cannot return.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence

from events.model import EventTransition, TrafficCount
from events.rules.base import SnapshotCandidate
from events.storage.bus import EventBus
from events.storage.snapshot import SnapshotWriter
from events.storage.store import EventStore, StorageError
from pipeline.observer import PipelineObserver

log = logging.getLogger(__name__)


class EventSink:
    """Thread-safe fan-out of results from every camera worker."""

    def __init__(
        self,
        store: EventStore,
        bus: EventBus,
        snapshots: SnapshotWriter | None,
        *,
        observer: PipelineObserver,
    ) -> None:
        self.store = store
        self.bus = bus
        self.snapshots = snapshots
        self.observer = observer
        self._lock = threading.Lock()
        self._pending_transitions: deque[EventTransition] = deque()
        self._pending_traffic: deque[TrafficCount] = deque()
        self._last_error_log = 0.0

    def publish(
        self,
        transitions: Sequence[EventTransition],
        snapshots: Sequence[SnapshotCandidate] = (),
        traffic: Sequence[TrafficCount] = (),
    ) -> None:
        with self._lock:
            self._pending_transitions.extend(transitions)
            self._pending_traffic.extend(traffic)
            stored = self._flush_locked()
        for t in stored:
            self.bus.publish(t)
            self.observer.event_transition(transition=t)
        if self.snapshots is not None:
            for candidate in snapshots:  # after the event rows exist, so set_snapshot finds them
                self.snapshots.submit(candidate)

    def flush(self) -> bool:
        """Retry what is pending; True when nothing is left."""
        self.publish([])
        return not self._pending_transitions and not self._pending_traffic

    @property
    def backlog(self) -> int:
        return len(self._pending_transitions) + len(self._pending_traffic)

    def _flush_locked(self) -> list[EventTransition]:
        stored: list[EventTransition] = []
        try:
            if self._pending_transitions:
                batch = list(self._pending_transitions)
                self.store.apply_many(batch)
                self._pending_transitions.clear()
                stored = batch
            if self._pending_traffic:
                self.store.add_traffic(list(self._pending_traffic))
                self._pending_traffic.clear()
        except StorageError as exc:
            now = time.monotonic()
            if now - self._last_error_log > 5.0:
                self._last_error_log = now
                log.error(
                    "event store unavailable, keeping %d transitions and %d counts to retry: %s",
                    len(self._pending_transitions),
                    len(self._pending_traffic),
                    exc,
                )
        return stored
