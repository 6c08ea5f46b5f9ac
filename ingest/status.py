"""A camera's connection state and health figures, readable at any time from any thread."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

log = logging.getLogger(__name__)


class CameraState(StrEnum):
    CONNECTING = "connecting"  # starting, or reconnecting within the offline grace period
    ONLINE = "online"  # frames are arriving
    OFFLINE = "offline"  # no frames for longer than the grace period
    STOPPED = "stopped"  # stopped on purpose (shutdown, camera removed): not an outage


class StatusCallback(Protocol):
    """Told of each state change; ``error`` is the masked reason or None. Keyword-only: the two
    states have the same type and would pass unnoticed if swapped."""

    def __call__(self, *, camera: str, old: CameraState, new: CameraState, error: str | None) -> None: ...


@dataclass(frozen=True, slots=True)
class CameraStatus:
    """A snapshot of one camera's ingest. Times are ``time.time()`` seconds."""

    camera: str
    url: str  # credentials masked
    state: CameraState
    since: float  # when the camera entered ``state``
    last_frame_time: float | None  # when the last frame left the decoder
    source_fps: float  # frames the camera sends per second (measured, over the last few seconds)
    analysed_fps: float  # frames handed on for analysis per second (measured)
    reconnects: int  # connection attempts after the first
    last_error: str | None  # why the last connection failed or ended (masked)
    dropped_frames: int  # analysed frames dropped because the consumer fell behind
    frames_analysed: int
    decode_errors: int
    width: int
    height: int


class RateMeter:
    """Events per second over a sliding window, from cumulative counters sampled now and then."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, int]] = deque()

    def sample(self, now: float, count: int) -> None:
        self._samples.append((now, count))
        # Keep one sample older than the window so the rate covers the whole window.
        while len(self._samples) > 2 and self._samples[1][0] <= now - self.window_s:
            self._samples.popleft()

    def rate(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        (t0, c0), (t1, c1) = self._samples[0], self._samples[-1]
        return (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0


class StatusTracker:
    """The state machine behind :class:`CameraStatus`, with change callbacks.

    connecting -> online on the first frame; online -> connecting when the connection is lost;
    connecting -> offline once it has lasted ``grace_s`` (``check()`` must be called
    periodically for that); offline -> online when frames return; any -> stopped.
    Callbacks run in the thread that caused the change (the camera's reader or monitor
    thread), one at a time and in order; they must be quick and must not call ``stop()``.
    """

    def __init__(
        self,
        camera: str,
        url: str,
        grace_s: float,
        on_status: StatusCallback | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        rate_window_s: float = 5.0,
    ) -> None:
        self.camera = camera
        self.url = url
        self.grace_s = grace_s
        self._on_status = on_status
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._notify = threading.Lock()  # keeps callbacks in transition order
        self.state = CameraState.CONNECTING
        self._since = wall()
        self._down_since = clock()
        self.last_frame_time: float | None = None
        self.last_error: str | None = None
        self.reconnects = 0
        self._source_rate = RateMeter(rate_window_s)
        self._analysed_rate = RateMeter(rate_window_s)

    def _transition(self, allowed_from: tuple[CameraState, ...], new: CameraState, error: str | None) -> None:
        with self._notify:
            with self._lock:
                old = self.state
                if old not in allowed_from:
                    return
                self.state = new
                self._since = self._wall()
                if new is CameraState.CONNECTING:
                    self._down_since = self._clock()
            level = logging.WARNING if new in (CameraState.OFFLINE, CameraState.CONNECTING) else logging.INFO
            log.log(level, "camera %r: %s -> %s%s", self.camera, old, new, f" ({error})" if error else "")
            if self._on_status is not None:
                try:
                    self._on_status(camera=self.camera, old=old, new=new, error=error)
                except Exception:
                    log.exception("camera %r: on_status callback failed", self.camera)

    def frame(self) -> None:
        """A frame was decoded (called for every decoded frame: keep it cheap)."""
        self.last_frame_time = self._wall()
        if self.state is not CameraState.ONLINE:
            self._transition((CameraState.CONNECTING, CameraState.OFFLINE), CameraState.ONLINE, None)

    def connection_lost(self, error: str | None) -> None:
        """A connection attempt failed or a session ended; reconnecting follows."""
        self.last_error = error
        self._transition((CameraState.ONLINE,), CameraState.CONNECTING, error)
        self.check()

    def check(self) -> None:
        """Report the camera offline once it has been reconnecting for the grace period."""
        if self.state is CameraState.CONNECTING and self._clock() - self._down_since >= self.grace_s:
            self._transition((CameraState.CONNECTING,), CameraState.OFFLINE, self.last_error)

    def stopped(self) -> None:
        self._transition(
            (CameraState.CONNECTING, CameraState.ONLINE, CameraState.OFFLINE), CameraState.STOPPED, None
        )

    def sample(self, packets: int, analysed: int) -> None:
        now = self._clock()
        with self._lock:
            self._source_rate.sample(now, packets)
            self._analysed_rate.sample(now, analysed)

    def snapshot(
        self, *, dropped_frames: int, frames_analysed: int, decode_errors: int, width: int, height: int
    ) -> CameraStatus:
        with self._lock:
            online = self.state is CameraState.ONLINE
            return CameraStatus(
                camera=self.camera,
                url=self.url,
                state=self.state,
                since=self._since,
                last_frame_time=self.last_frame_time,
                source_fps=self._source_rate.rate() if online else 0.0,
                analysed_fps=self._analysed_rate.rate() if online else 0.0,
                reconnects=self.reconnects,
                last_error=self.last_error,
                dropped_frames=dropped_frames,
                frames_analysed=frames_analysed,
                decode_errors=decode_errors,
                width=width,
                height=height,
            )
