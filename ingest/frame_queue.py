"""The hand-over between a camera's reader thread and its consumer."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

from ingest.frame import Frame


class FrameQueue:
    """A bounded queue of analysed frames that never blocks the reader.

    Like a live camera, a consumer that falls behind loses the oldest frame
    (counted in ``dropped``); the reader keeps reading, so one slow consumer
    cannot stall its camera's connection.
    """

    def __init__(self, maxsize: int) -> None:
        self._queue: queue.Queue[Frame] = queue.Queue(maxsize=maxsize)
        self.dropped = 0

    def put(self, frame: Frame) -> None:
        while True:
            try:
                self._queue.put_nowait(frame)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def get(self, timeout: float | None = None) -> Frame | None:
        """The oldest queued frame, waiting up to ``timeout`` s; None if none came."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def drain(self, stop: threading.Event, poll_s: float = 0.5) -> Iterator[Frame]:
        """Queued frames until ``stop`` is set and the queue is empty."""
        while not stop.is_set() or not self._queue.empty():
            frame = self.get(poll_s)
            if frame is not None:
                yield frame
