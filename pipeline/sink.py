"""Where a camera's results go: the event store, the live bus, snapshots and traffic counts.

Camera threads never wait for storage. ``publish`` hands a batch (the frame's
transitions and traffic counts) to a bounded in-memory queue and returns; one
writer thread stores batches in order, each in one transaction
(``EventStore.apply_batch``), and publishes their transitions on the live bus
once stored, so the feed never shows an event the API cannot return. While
the store is slow or down the writer retries with backoff and the queue
fills; batches that find it full go to the on-disk journal instead, and every
later batch follows them there until the journal is drained, so order is kept.
Nothing is dropped: after a crash the journal is replayed at start-up, and
batch ids make a replayed batch a no-op. Snapshots go to the snapshot writer
at once: their rows are apart from the events' and may come first.

Bound: the live feed lags the cameras by the writer's backlog, which
``/metrics`` shows (``khupho_writer_oldest_unwritten_seconds``); with a
healthy store it is a few milliseconds.
"""

from __future__ import annotations

import itertools
import logging
import queue
import secrets
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from events.model import EventTransition, TrafficCount
from events.rules.base import SnapshotCandidate
from events.storage.bus import EventBus
from events.storage.snapshot import SnapshotWriter
from events.storage.store import EventStore, StorageError
from pipeline.journal import Batch, Journal
from pipeline.observer import PipelineObserver

log = logging.getLogger(__name__)

RETRY_INITIAL_S = 0.2
RETRY_MAX_S = 5.0
JOURNAL_READ = 256  # batches read from the journal at a time


class EventSink:
    """Thread-safe hand-over of every camera worker's results to one writer thread."""

    def __init__(
        self,
        store: EventStore,
        bus: EventBus,
        snapshots: SnapshotWriter | None,
        *,
        observer: PipelineObserver,
        journal_dir: Path,
        max_queue: int = 1024,
        batch_prefix: str | None = None,
    ) -> None:
        """``batch_prefix`` starts every batch id (cluster mode: the camera and its lease epoch)."""
        self.store = store
        self.bus = bus
        self.snapshots = snapshots
        self.observer = observer
        self._queue: queue.Queue[Batch] = queue.Queue(maxsize=max_queue)
        self._journal = Journal(journal_dir)
        self._rejected = journal_dir / "rejected.jsonl"
        self._lock = threading.Lock()  # the journal and the spilling flag
        self._spilling = self._journal.pending > 0  # batches left by the last run come first
        run = secrets.token_hex(4)
        self._run_id = run if batch_prefix is None else f"{batch_prefix}-{run}"
        self._seq = itertools.count(1)
        self._idle = threading.Condition(self._lock)
        self._writing: Batch | None = None  # the batch being stored now
        self._writing_from_queue = False
        self._stop = threading.Event()
        self._closed = False
        self._last_error_log = 0.0
        self.stored_batches = 0
        self._thread = threading.Thread(target=self._run, name="event-writer", daemon=True)
        if self._journal.pending:
            log.warning(
                "event journal %s holds %d batches not yet stored: storing them first",
                self._journal.path,
                self._journal.pending,
            )

    def start(self) -> EventSink:
        self._thread.start()
        return self

    def replay_journal(self, deadline_s: float = 30.0) -> int:
        """Store what the journal holds (left by a crashed or timed-out run), before the writer
        starts; returns how many batches. Batches already stored are skipped by their ids. Raises
        :class:`StorageError` when the store does not take them within ``deadline_s``."""
        replayed = 0
        deadline = time.monotonic() + deadline_s
        while self._journal.pending:
            batches, end, lines = self._journal.read(JOURNAL_READ)
            if not lines:
                break
            for batch in batches:
                if not self._store(batch, from_queue=False, deadline=deadline):
                    raise StorageError(
                        f"the event store did not take the journal's batches within {deadline_s:.0f} s"
                    )
            self._journal.advance(end, lines)
            replayed += len(batches)
        self._spilling = self._journal.pending > 0
        if replayed:
            log.warning("stored %d event batches from the journal of the previous run", replayed)
        return replayed

    # -- camera side ------------------------------------------------------------------------------------

    def publish(
        self,
        transitions: Sequence[EventTransition],
        snapshots: Sequence[SnapshotCandidate] = (),
        traffic: Sequence[TrafficCount] = (),
    ) -> None:
        """Hand over one frame's results; never waits for storage (at most for a line appended to
        the journal's file, in the OS's cache, while the writer is behind)."""
        if self.snapshots is not None:
            for candidate in snapshots:
                self.snapshots.submit(candidate)
        if not transitions and not traffic:
            return
        batch = Batch(f"{self._run_id}:{next(self._seq)}", time.time(), list(transitions), list(traffic))
        with self._lock:
            if self._closed:
                # A camera that stopped late: nobody stores it now, the next start will.
                log.warning("event batch published after the writer stopped: kept in the journal")
            elif not self._spilling:
                try:
                    self._queue.put_nowait(batch)
                    return
                except queue.Full:
                    self._spilling = True
                    log.warning(
                        "event writer behind (%d batches queued): new batches go to the journal %s",
                        self._queue.maxsize,
                        self._journal.path,
                    )
            self._journal.append(batch)

    # -- state ------------------------------------------------------------------------------------------

    @property
    def backlog(self) -> int:
        """Batches published and not yet stored (queued, being written, or in the journal)."""
        with self._lock:
            return self._queue.qsize() + self._journal.pending + (self._writing is not None)

    @property
    def journal_bytes(self) -> int:
        with self._lock:
            return self._journal.unread_bytes

    def oldest_unwritten_age(self) -> float:
        """Seconds since the oldest batch not yet stored was published (0 when all is stored)."""
        with self._lock:
            oldest = self._writing
            if oldest is None:
                with self._queue.mutex:
                    oldest = self._queue.queue[0] if self._queue.queue else None
            offset = self._journal.offset if oldest is None and self._journal.pending else None
        if oldest is None and offset is not None:
            batches, _, _ = self._journal.read(1, offset)  # outside the lock: its own file handle
            oldest = batches[0] if batches else None
        return max(0.0, time.time() - oldest.created) if oldest is not None else 0.0

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything published so far is stored; False on timeout."""
        with self._idle:
            return self._idle.wait_for(
                # unfinished_tasks counts a batch taken off the queue until it is stored.
                lambda: self._queue.unfinished_tasks == 0 and self._journal.pending == 0,
                timeout,
            )

    def close(self, timeout: float = 10.0) -> bool:
        """Store what is pending for up to ``timeout`` seconds, then stop the writer. Whatever is left
        goes to the journal, to be stored at the next start; True when nothing was left."""
        started = time.monotonic()
        done = self.flush(timeout)
        self._stop.set()
        if self._thread.ident is not None:
            # The writer leaves a retry at once when stopped; a store call in progress is bounded by
            # the store's own timeout.
            self._thread.join(max(0.5, timeout - (time.monotonic() - started)))
        with self._lock:
            self._closed = True
            left = []
            while True:
                try:
                    left.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if self._writing is not None and self._writing_from_queue:  # given up on mid-retry
                left.insert(0, self._writing)
            self._writing = None
            if left:
                # Queued batches are older than the journal's: they go first, in one atomic rewrite.
                rest, _, _ = self._journal.read(10**9)
                self._journal.rewrite(left + rest)
            pending = self._journal.pending
            self._journal.close()
        if pending:
            log.warning(
                "%d event batches not stored at shutdown: kept in the journal for the next start", pending
            )
        return done and not pending

    # -- writer thread ----------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                batch = self._queue.get(timeout=0.2)
            except queue.Empty:
                batch = None
            if batch is not None:
                self._store(batch, from_queue=True)
                continue
            # The queue is empty: the journal's batches (all newer than anything queued) are next.
            with self._lock:
                offset = self._journal.offset if self._journal.pending else None
                if offset is None:
                    self._idle.notify_all()
                    continue
            # Read outside the lock (its own file handle): publishers only append meanwhile.
            batches, end, lines = self._journal.read(JOURNAL_READ, offset)
            for journaled in batches:
                if not self._store(journaled, from_queue=False):
                    return  # stopping: the journal keeps them from its stored offset
            with self._lock:
                self._journal.advance(end, lines)
                if self._journal.pending == 0 and self._queue.empty():
                    self._spilling = False
                    log.info("event journal drained: batches go through memory again")
                self._idle.notify_all()

    def _store(self, batch: Batch, *, from_queue: bool, deadline: float | None = None) -> bool:
        """Store one batch, retrying with backoff; False if the sink stopped (or ``deadline``
        passed) first. A batch the store refuses for what it is (not an outage) is set aside in
        ``rejected.jsonl`` beside the journal, logged, and counts as done: it must not stop the
        batches behind it."""
        with self._lock:
            self._writing, self._writing_from_queue = batch, from_queue
        delay = RETRY_INITIAL_S
        while True:
            try:
                self.store.apply_batch(batch.transitions, batch.traffic, batch_id=batch.id)
                stored = True
                break
            except StorageError as exc:
                now = time.monotonic()
                if now - self._last_error_log > 5.0:
                    self._last_error_log = now
                    log.error("event store unavailable, %d batches waiting: %s", self.backlog, exc)
                if deadline is not None and now + delay > deadline:
                    return False
                if self._stop.wait(delay):
                    return False  # close() takes care of the batch
                delay = min(RETRY_MAX_S, delay * 2)
            except Exception:
                log.exception(
                    "event batch %s refused by the store: set aside in %s", batch.id, self._rejected
                )
                with self._rejected.open("a") as f:
                    f.write(batch.to_line())
                stored = False
                break
        with self._lock:
            self._writing = None
            if stored:
                self.stored_batches += 1
            if from_queue:
                self._queue.task_done()
                self._idle.notify_all()
        if stored:
            for t in batch.transitions:
                self.bus.publish(t)
                self.observer.event_transition(transition=t)
        return True
