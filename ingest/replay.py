"""A recorded file played as a live camera: paced at its own frame rate, looping, with a status.

Stands in for a real camera in the demo and in capacity benchmarks: frames come
out when their timestamps say (not as fast as the decoder goes), the timeline
continues across loops, and the public face (``start``/``stop``/``get``/
``frames``/``status``) is the one :class:`ingest.rtsp.RtspSource` has.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator

from ingest.decode import FALLBACK_FPS, DecodeStats
from ingest.errors import SourceError
from ingest.frame import Frame
from ingest.frame_queue import FrameQueue
from ingest.packet_ring import PacketRing
from ingest.status import CameraStatus, StatusCallback, StatusTracker
from ingest.video_source import VideoSource

log = logging.getLogger(__name__)


class ReplaySource:
    """Replay ``path`` at ``speed`` x real time in a background thread, ``loop``-ing at the end."""

    def __init__(
        self,
        camera: str,
        path: str | os.PathLike[str],
        analysis_fps: float | None = 5.0,
        *,
        loop: bool = True,
        speed: float = 1.0,
        queue_size: int = 4,
        decode_threads: int = 1,
        on_status: StatusCallback | None = None,
        packets: PacketRing | None = None,
    ) -> None:
        if speed <= 0:
            raise ValueError(f"camera {camera!r}: speed must be positive, not {speed}")
        self.camera = camera
        self.path = os.fspath(path)
        self.analysis_fps = analysis_fps
        self.loop = loop
        self.speed = speed
        self.decode_threads = decode_threads
        self.packets = packets  # every demuxed packet, for event clips (None: not kept)
        self._source = VideoSource(
            self.path,
            camera=camera,
            analysis_fps=analysis_fps,
            decode_threads=decode_threads,
            packets=packets,
        )  # opens now: a bad file fails here
        self.info = self._source.info
        self.stats = DecodeStats()
        self._queue = FrameQueue(queue_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tracker = StatusTracker(camera, self.path, grace_s=0.0, on_status=on_status)

    def start(self) -> ReplaySource:
        if self._thread is not None:
            raise RuntimeError(f"camera {self.camera!r}: already started")
        self._thread = threading.Thread(target=self._run, name=f"replay-{self.camera}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 5.0) -> bool:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._tracker.stopped()
        return self._thread is None or not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def status(self) -> CameraStatus:
        return self._tracker.snapshot(
            dropped_frames=self._queue.dropped,
            frames_analysed=self.stats.picked,
            decode_errors=self.stats.decode_errors,
            width=self.info.width,
            height=self.info.height,
        )

    def get(self, timeout: float | None = None) -> Frame | None:
        return self._queue.get(timeout)

    def frames(self, poll_s: float = 0.5) -> Iterator[Frame]:
        return self._queue.drain(self._stop, poll_s)

    # -- worker ---------------------------------------------------------------------------------------

    def _run(self) -> None:
        offset = 0.0
        index_offset = 0
        packets = picked = decoded = 0
        try:
            while not self._stop.is_set():
                source = (
                    self._source
                    if offset == 0.0
                    else VideoSource(
                        self.path,
                        camera=self.camera,
                        analysis_fps=self.analysis_fps,
                        decode_threads=self.decode_threads,
                        pts_offset=offset,
                        packets=self.packets,
                    )
                )
                start = time.monotonic()
                last_pts = 0.0
                for frame in source:
                    # The loop's frames come out on one timeline (offset added by the source).
                    last_pts = frame.pts - offset
                    delay = last_pts / self.speed - (time.monotonic() - start)
                    if delay > 0 and self._stop.wait(delay):
                        return
                    frame.index += index_offset
                    frame.wall_time = time.time()
                    self._tracker.frame()
                    self.stats.packets = packets + source.stats.packets
                    self.stats.picked = picked + source.stats.picked
                    self.stats.decoded = decoded + source.stats.decoded
                    self._tracker.sample(self.stats.packets, self.stats.picked)
                    self._queue.put(frame)
                packets += source.stats.packets
                picked += source.stats.picked
                decoded += source.stats.decoded
                self.stats.decoded = decoded
                self.stats.decode_errors += source.stats.decode_errors
                if not self.loop:
                    return
                period = 1.0 / (self.info.fps or FALLBACK_FPS)
                offset += self.info.duration or last_pts + period
                index_offset += source.stats.packets
        except SourceError as exc:
            log.error("%s", exc)
            self._tracker.connection_lost(str(exc))
        finally:
            self._stop.set()
