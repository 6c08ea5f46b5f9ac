"""Batching across streams: many cameras' frames, one inference call.

Each camera submits a picture and gets a ``Future``; a single worker thread
gathers up to ``max_batch`` pictures (the detector's own limit per call),
waiting at most ``max_wait_ms`` after the first one, runs the detector once
(which groups pictures by letterboxed input shape) and resolves the futures
in submission order, so every source sees its results in the order it sent
its frames.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import supervision as sv

from detectors.base import Detector

log = logging.getLogger(__name__)


class BatchHook(Protocol):
    """Told of every detector call: how many pictures it ran and how long it took (keyword-only,
    so the two numbers cannot be swapped on the way to the metrics)."""

    def __call__(self, *, batch_size: int, seconds: float) -> None: ...


@dataclass(slots=True)
class _Request:
    source: str
    image: np.ndarray
    future: Future = field(default_factory=Future)
    submitted: float = field(default_factory=time.perf_counter)


class BatcherClosed(RuntimeError):
    """Submitting to a batcher that has been closed."""


class InferenceBatcher:
    """Gathers frames from many sources into batched ``Detector.detect`` calls."""

    def __init__(
        self,
        detector: Detector,
        *,
        max_wait_ms: float,
        max_batch: int | None = None,
        max_queue: int = 256,
        on_batch: BatchHook | None = None,
    ) -> None:
        """``max_batch`` None gathers the detector's own ``max_batch``; ``max_wait_ms`` comes from
        the config (``batching.max_wait_ms``)."""
        max_batch = detector.max_batch if max_batch is None else max_batch
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if max_wait_ms < 0:
            raise ValueError("max_wait_ms must not be negative")
        self.detector = detector
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self._queue: queue.Queue[_Request | None] = queue.Queue(maxsize=max_queue)
        self._on_batch = on_batch
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inference-batcher", daemon=True)
        self._thread.start()

    def submit(self, source: str, image: np.ndarray) -> Future[sv.Detections]:
        """Queue one picture; blocks while ``max_queue`` pictures are already waiting (back-pressure)."""
        if self._closed.is_set():
            raise BatcherClosed("inference batcher is closed")
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or 0 in image.shape:
            raise ValueError(
                f"{source}: expected a BGR uint8 picture H x W x 3, got {image.dtype} {image.shape}"
            )
        req = _Request(source, image)
        self._queue.put(req)
        return req.future

    def queue_depth(self) -> int:
        return self._queue.qsize()

    def close(self, timeout: float | None = 30.0) -> None:
        """Stop accepting pictures, finish every queued one, then stop the worker."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._queue.put(None)
        self._thread.join(timeout)

    def __enter__(self) -> InferenceBatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- worker ---------------------------------------------------------------------------------------

    def _gather(self) -> tuple[list[_Request], bool]:
        """Block for one request, then take more until the batch is full or the wait is over."""
        first = self._queue.get()
        if first is None:
            return [], True
        batch = [first]
        deadline = time.perf_counter() + self.max_wait
        while len(batch) < self.max_batch:
            remaining = deadline - time.perf_counter()
            try:
                req = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if req is None:
                return batch, True
            batch.append(req)
        return batch, False

    def _run(self) -> None:
        stop = False
        while not stop:
            batch, stop = self._gather()
            if batch:
                self._process(batch)
        # Requests that raced with close() still get an answer.
        while True:
            try:
                req = self._queue.get_nowait()
            except queue.Empty:
                break
            if req is not None:
                self._process([req])

    def _process(self, batch: list[_Request]) -> None:
        t0 = time.perf_counter()
        try:
            results = self.detector.detect([r.image for r in batch])
        except Exception as exc:
            if len(batch) > 1:
                # One bad picture must not cost the other cameras their results: retry one by one.
                log.warning("batch of %d failed (%s); retrying pictures one by one", len(batch), exc)
                for r in batch:
                    self._process([r])
                return
            log.error("inference failed for %s: %s", batch[0].source, exc)
            batch[0].future.set_exception(exc)
            return
        elapsed = time.perf_counter() - t0
        if self._on_batch is not None:
            self._on_batch(batch_size=len(batch), seconds=elapsed)
        for r, det in zip(batch, results, strict=True):
            r.future.set_result(det)
