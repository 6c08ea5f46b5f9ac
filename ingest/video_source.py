"""A video file or stream URL as an iterable of Frames at the analysis rate."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from types import TracebackType

from av.container import InputContainer

from ingest.config import CameraSourceConfig
from ingest.decode import DEFAULT_MAX_CONSECUTIVE_ERRORS, DEFAULT_MAX_PIXELS, DecodeStats, FrameReader
from ingest.errors import SourceError
from ingest.frame import Frame
from ingest.opener import SourceInfo, Timeout, open_input, source_info, video_stream
from ingest.packet_ring import PacketRing
from ingest.rate import RateSelector
from ingest.urls import is_live_url, mask_url

log = logging.getLogger(__name__)


class VideoSource:
    """Frames of one file (or one session of a stream URL), picked at ``analysis_fps`` by timestamp.

    Opens on construction, so a missing, empty, corrupt or non-video input raises
    :class:`SourceError` right away and ``info`` (size, fps, frame count, codec) is available
    before iterating. Iterating decodes from the start; iterating again reopens the input.

    ``Frame.pts`` is the frame's stream time in seconds; ``Frame.index`` its position among the
    source's frames (estimated from pts when ``decode_keyframes_only``).

    Damage: packets the decoder rejects are skipped with a warning; a file that ends before
    the frame count in its index (truncated) is logged as a warning and flagged in
    ``stats.truncated``. With ``strict=True`` either raises ``SourceError(kind='damaged')``
    after the frames that did decode have been yielded. A read error raises ``SourceError``
    after the frames before it.

    A stream URL (``rtsp://`` ...) is read once: end of stream ends the iteration. For a camera
    that must survive disconnects use :class:`ingest.rtsp.RtspSource`.

    ``pts_offset`` is added to every ``Frame.pts`` (a replay's loops continue one timeline);
    ``packets`` gets every demuxed video packet, for event clips.
    """

    def __init__(
        self,
        source: str | os.PathLike[str],
        camera: str = "video",
        analysis_fps: float | None = None,
        *,
        decode_keyframes_only: bool = False,
        decode_threads: int = 0,
        timeout: Timeout = None,
        options: dict[str, str] | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_consecutive_errors: int = DEFAULT_MAX_CONSECUTIVE_ERRORS,
        strict: bool = False,
        pts_offset: float = 0.0,
        packets: PacketRing | None = None,
    ) -> None:
        self._target = os.fspath(source)
        self.camera = camera
        self.source = mask_url(self._target)
        self.analysis_fps = analysis_fps
        # Validate the rate now, not at the first frame.
        RateSelector(analysis_fps)
        self.live = is_live_url(self._target)
        self.decode_keyframes_only = decode_keyframes_only
        self.decode_threads = decode_threads
        # A stream URL read directly gets a live camera's defaults (RtspSource passes its own).
        live_defaults = CameraSourceConfig(url=self._target) if self.live else None
        if timeout is None and live_defaults is not None:
            timeout = (live_defaults.open_timeout_s, live_defaults.read_timeout_s)
        self.timeout = timeout
        self.options = {**(live_defaults.stream_options() if live_defaults else {}), **(options or {})}
        self.max_pixels = max_pixels
        self.max_consecutive_errors = max_consecutive_errors
        self.strict = strict
        self.pts_offset = pts_offset
        self.packets = packets
        self.stats = DecodeStats()
        self._container: InputContainer | None = None
        self.info: SourceInfo = self._open()

    def _open(self) -> SourceInfo:
        container = open_input(self._target, camera=self.camera, options=self.options, timeout=self.timeout)
        try:
            stream = video_stream(container, camera=self.camera, source=self.source)
            info = source_info(container, stream, camera=self.camera, source=self.source, live=self.live)
        except BaseException:
            container.close()
            raise
        self._container = container
        return info

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"VideoSource(camera={self.camera!r}, source={self.source!r}, analysis_fps={self.analysis_fps})"
        )

    def __iter__(self) -> Iterator[Frame]:
        if self._container is None:
            self.info = self._open()
        container, self._container = self._container, None
        assert container is not None
        stats = self.stats = DecodeStats()
        _open_timeout, read_timeout = (
            self.timeout if isinstance(self.timeout, tuple) else (None, self.timeout)
        )
        completed = False
        try:
            reader = FrameReader(
                container,
                container.streams.video[0],
                camera=self.camera,
                source=self.source,
                raw_target=self._target,
                selector=RateSelector(self.analysis_fps),
                stats=stats,
                fps=self.info.fps,
                keyframes_only=self.decode_keyframes_only,
                threads=self.decode_threads,
                max_pixels=self.max_pixels,
                max_consecutive_errors=self.max_consecutive_errors,
                read_timeout=read_timeout,
                pts_offset=(lambda pts: pts + self.pts_offset) if self.pts_offset else None,
                packets=self.packets,
            )
            yield from reader
            completed = True
        finally:
            container.close()
        if completed:
            self._check_complete(stats)

    def _check_complete(self, stats: DecodeStats) -> None:
        expected = self.info.frame_count
        if not self.live and expected and stats.packets < expected:
            stats.truncated = True
            log.warning(
                "camera %r: %s: input ended early after %d of %d frames (file truncated or damaged); "
                "%d frames decoded",
                self.camera,
                self.source,
                stats.packets,
                expected,
                stats.decoded,
            )
        if stats.decode_errors:
            log.warning(
                "camera %r: %s: %d undecodable packets skipped (%d frames decoded)",
                self.camera,
                self.source,
                stats.decode_errors,
                stats.decoded,
            )
        if not stats.decoded:
            raise SourceError(self.camera, self.source, "no frame could be decoded", "undecodable")
        if self.strict and (stats.truncated or stats.decode_errors):
            problems = []
            if stats.truncated:
                problems.append(f"truncated after {stats.packets} of {expected} frames")
            if stats.decode_errors:
                problems.append(f"{stats.decode_errors} undecodable packets skipped")
            raise SourceError(self.camera, self.source, "damaged input: " + ", ".join(problems), "damaged")
