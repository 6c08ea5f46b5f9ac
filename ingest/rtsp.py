"""A live camera that survives the network: its own thread, reconnects, a stall watchdog, status."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType

import av.error

from ingest.config import CameraSourceConfig
from ingest.decode import DecodeStats, FrameReader
from ingest.errors import SourceError
from ingest.frame import Frame
from ingest.frame_queue import FrameQueue
from ingest.opener import open_input, video_stream
from ingest.packet_ring import PacketRing
from ingest.rate import RateSelector
from ingest.reconnect import Backoff
from ingest.status import CameraStatus, StatusCallback, StatusTracker
from ingest.urls import mask_text

log = logging.getLogger(__name__)

FrameCallback = Callable[[Frame], None]
MONITOR_TICK_S = 0.1


class RtspSource:
    """Read one live camera (RTSP, or any live URL FFmpeg opens) in a background thread.

    * Frames at ``config.analysis_fps`` go to ``on_frame`` (called in the camera's thread: hand
      the frame off quickly) or, without a callback, into a bounded queue read with ``get()``;
      when the queue is full the oldest frame is dropped (and counted), never the camera's
      thread blocked, so one slow consumer cannot stall the other cameras.
    * End of stream, a read error, a socket silent for ``read_timeout_s`` or no decoded picture
      for ``stall_timeout_s`` all count as a disconnect: the source reconnects with exponential
      backoff and jitter until ``stop()``.
    * ``status()`` returns a :class:`CameraStatus` at any time; ``on_status(camera=, old=, new=,
      error)`` reports changes, ``offline`` only after ``offline_grace_s`` of reconnecting.
    * ``Frame.pts`` stays continuous across reconnects (each new session is placed after the
      last frame by the wall-clock time the camera was away), ``Frame.index`` keeps counting.
    * The URL's credentials are masked in every log line, error and status.
    * With ``packets``, every demuxed video packet is kept there too (event clips).
    """

    def __init__(
        self,
        camera: str,
        config: CameraSourceConfig,
        *,
        on_frame: FrameCallback | None = None,
        on_status: StatusCallback | None = None,
        rng: random.Random | None = None,
        packets: PacketRing | None = None,
    ) -> None:
        self.camera = camera
        self.packets = packets
        self.config = config
        self.source = config.masked_url
        self.stats = DecodeStats()
        self._on_frame = on_frame
        self._queue = FrameQueue(config.queue_size)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._tracker = StatusTracker(camera, self.source, config.offline_grace_s, on_status)
        self._backoff = Backoff(config.backoff, rng)
        self._selector = RateSelector(config.analysis_fps)
        self._options = config.stream_options()
        self._next_index = 0
        # Continuous timeline across sessions.
        self._offset: float | None = None
        self._last_pts: float | None = None
        self._last_frame_at: float | None = None

    # ------------------------------------------------------------------ public face

    def start(self) -> RtspSource:
        if self._threads:
            raise RuntimeError(f"camera {self.camera!r}: already started")
        self._threads = [
            threading.Thread(target=self._run, name=f"ingest-{self.camera}", daemon=True),
            threading.Thread(target=self._monitor, name=f"ingest-{self.camera}-watch", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float | None = None) -> bool:
        """Stop and join the threads; True if they ended within ``timeout``.

        A thread blocked inside FFmpeg (opening, or waiting on a silent socket) notices within
        the open/read timeout, so the default waits that long.
        """
        self._stop.set()
        if timeout is None:
            timeout = self.config.open_timeout_s + self.config.read_timeout_s + 2.0
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            log.error("camera %r: threads still running after %.1f s: %s", self.camera, timeout, alive)
        self._tracker.stopped()
        return not alive

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def status(self) -> CameraStatus:
        stats = self.stats
        return self._tracker.snapshot(
            dropped_frames=self._queue.dropped,
            frames_analysed=stats.picked,
            decode_errors=stats.decode_errors,
            width=stats.width,
            height=stats.height,
        )

    def get(self, timeout: float | None = None) -> Frame | None:
        """The oldest queued frame, waiting up to ``timeout`` s; None if none came."""
        return self._queue.get(timeout)

    def frames(self, poll_s: float = 0.5) -> Iterator[Frame]:
        """Queued frames until the source is stopped."""
        return self._queue.drain(self._stop, poll_s)

    def __enter__(self) -> RtspSource:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RtspSource(camera={self.camera!r}, source={self.source!r}, state={self._tracker.state})"

    # ------------------------------------------------------------------ threads

    def _monitor(self) -> None:
        """Measure rates and turn a long reconnect into ``offline``; never blocks on FFmpeg."""
        tracker, stats = self._tracker, self.stats
        while not self._stop.wait(MONITOR_TICK_S):
            tracker.sample(stats.packets, stats.picked)
            tracker.check()

    def _run(self) -> None:
        attempt = 0
        last_error: str | None = None
        while not self._stop.is_set():
            if attempt:
                self._tracker.reconnects += 1
            attempt += 1
            try:
                error = self._session()
            except av.error.FFmpegError as exc:
                # An FFmpeg error we did not map: its text may hold the raw URL, so no traceback.
                error = f"unexpected FFmpeg error: {mask_text(str(exc), self.config.url)}"
                log.error("camera %r: %s: %s", self.camera, self.source, error)
            except Exception as exc:  # a bug must not kill the camera silently
                log.exception("camera %r: %s: unexpected error in the reader", self.camera, self.source)
                error = f"internal error: {type(exc).__name__}"
            if self._stop.is_set():
                break
            self._tracker.connection_lost(error)
            delay = self._backoff.next_delay()
            level = logging.WARNING if error != last_error else logging.INFO
            log.log(
                level, "camera %r: %s: %s; reconnecting in %.2f s", self.camera, self.source, error, delay
            )
            last_error = error
            self._stop.wait(delay)

    def _session(self) -> str | None:
        """One connection: open, read until it ends. Returns why it ended (None when stopped)."""
        cfg = self.config
        try:
            container = open_input(
                cfg.url,
                camera=self.camera,
                options=self._options,
                timeout=(cfg.open_timeout_s, cfg.read_timeout_s),
            )
        except SourceError as err:
            return err.reason
        reader: FrameReader | None = None
        self._offset = None
        try:
            stream = video_stream(container, camera=self.camera, source=self.source)
            rate = stream.average_rate or stream.guessed_rate
            reader = FrameReader(
                container,
                stream,
                camera=self.camera,
                source=self.source,
                raw_target=cfg.url,
                selector=self._selector,
                stats=self.stats,
                fps=float(rate) if rate else None,
                keyframes_only=cfg.decode_keyframes_only,
                threads=cfg.decode_threads,
                max_pixels=cfg.max_pixels,
                read_timeout=cfg.read_timeout_s,
                stall_timeout=cfg.stall_timeout_s,
                index_start=self._next_index,
                pts_offset=self._continuous,
                on_decoded=self._tracker.frame,
                stop=self._stop,
                packets=self.packets,
            )
            log.info(
                "camera %r: %s: connected (%s %dx%d)",
                self.camera,
                self.source,
                stream.codec_context.name,
                stream.codec_context.width,
                stream.codec_context.height,
            )
            delivered = False
            for frame in reader:
                self._deliver(frame)
                if not delivered:
                    delivered = True
                    self._backoff.reset()
            if self._stop.is_set():
                return None
            return "stream ended (the camera closed the connection)"
        except SourceError as err:
            return err.reason
        finally:
            if reader is not None:
                self._next_index = reader.next_index
            container.close()

    def _continuous(self, pts: float) -> float:
        """Map a session's stream time onto one timeline that never restarts."""
        now = time.monotonic()
        if self._offset is None:
            if self._last_pts is None or self._last_frame_at is None:
                self._offset = 0.0
            else:
                away = max(now - self._last_frame_at, 1e-3)
                self._offset = self._last_pts + away - pts
        out = pts + self._offset
        self._last_pts, self._last_frame_at = out, now
        return out

    def _deliver(self, frame: Frame) -> None:
        if self._on_frame is not None:
            try:
                self._on_frame(frame)
            except Exception:
                log.exception("camera %r: on_frame callback failed", self.camera)
            return
        self._queue.put(frame)
