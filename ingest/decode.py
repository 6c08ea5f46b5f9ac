"""The decode loop shared by files and live streams: demux, decode, time, pick, convert."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import av
import av.error
import numpy as np
from av.container import InputContainer
from av.video.reformatter import VideoReformatter
from av.video.stream import VideoStream

from ingest.errors import SourceError
from ingest.frame import Frame
from ingest.opener import describe_error
from ingest.packet_ring import PacketRing
from ingest.rate import RateSelector
from ingest.timestamps import TimestampCorrector

log = logging.getLogger(__name__)

# 8K UHD and DCI 8K decode fine (about 100 MB per BGR frame); beyond that a frame is more
# likely a misconfigured stream than a camera, and a queue of them could exhaust memory.
DEFAULT_MAX_PIXELS = 8192 * 4320
# A run of undecodable packets this long means the stream is garbage, not a damaged patch.
DEFAULT_MAX_CONSECUTIVE_ERRORS = 50
FALLBACK_FPS = 25.0


class BgrConverter:
    """YUV -> BGR uint8 for the frames picked for analysis, with one reusable swscale context.

    ``frame.to_ndarray(format="bgr24")`` does the same conversion but builds a new swscale
    context for every frame, with a thread pool of one thread per core (threads=0): measured
    here at 7 ms wall / 2.4 ms CPU per 720p frame against 0.6 / 0.4 ms with a kept context. One
    thread per camera: with many cameras the parallelism is across cameras.
    """

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads
        self._reformatter = VideoReformatter()

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        return self._reformatter.reformat(frame, format="bgr24", threads=self.threads).to_ndarray()


@dataclass(slots=True)
class DecodeStats:
    """Counters of one source, cumulative over reconnects; plain ints so other threads can read them."""

    packets: int = 0  # video packets demuxed (= source frames, decoded or not)
    decoded: int = 0  # frames out of the decoder
    picked: int = 0  # frames converted to BGR and handed on
    decode_errors: int = 0  # packets the decoder rejected
    resolution_changes: int = 0
    truncated: bool = False
    width: int = 0
    height: int = 0


class FrameReader:
    """Iterate the frames due for analysis from one opened container.

    Only picked frames are converted out of YUV (:class:`BgrConverter`); every other
    frame costs only its decode, or nothing at all with ``keyframes_only``: non-key packets
    never reach the decoder (what FFmpeg's ``skip_frame=NONKEY`` would do inside it), and each
    keyframe is drained out at once. Without the drain a decoder with a reorder delay (H.264
    with B-frames) would hold each keyframe back until the next one or two arrive, seconds
    later on a camera; ``skip_frame=NONKEY`` itself is not used since it also discards
    keyframes that are not IDR pictures (open-GOP I-frames), which would then never appear.

    Errors: a packet the decoder rejects is skipped and logged (FFmpeg does the same), unless
    ``max_consecutive_errors`` packets in a row fail, which raises ``SourceError('undecodable')``.
    A read error is raised as ``SourceError``. With ``stall_timeout`` set, a stream that keeps
    sending data but yields no decoded frame for that long raises ``SourceError('stalled')``.

    ``packets``: every demuxed video packet is also handed to this ring (a reference, about 1 µs),
    whether decoded or not, and told where this session sits on the frame timeline (event clips).
    """

    def __init__(
        self,
        container: InputContainer,
        stream: VideoStream,
        *,
        camera: str,
        source: str,
        raw_target: str,
        selector: RateSelector,
        stats: DecodeStats,
        fps: float | None,
        keyframes_only: bool = False,
        threads: int = 0,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_consecutive_errors: int = DEFAULT_MAX_CONSECUTIVE_ERRORS,
        read_timeout: float | None = None,
        stall_timeout: float | None = None,
        index_start: int = 0,
        pts_offset: Callable[[float], float] | None = None,
        clock: Callable[[], float] = time.monotonic,
        convert: Callable[[av.VideoFrame], np.ndarray] | None = None,
        on_decoded: Callable[[], None] | None = None,
        stop: threading.Event | None = None,
        packets: PacketRing | None = None,
    ) -> None:
        self.container = container
        self.stream = stream
        self.camera = camera
        self.source = source
        self._raw_target = raw_target
        self.selector = selector
        self.stats = stats
        self.fps = fps
        self.keyframes_only = keyframes_only
        self.max_pixels = max_pixels
        self.max_consecutive_errors = max_consecutive_errors
        self.read_timeout = read_timeout
        self.stall_timeout = stall_timeout
        self.next_index = index_start
        self._index_start = index_start
        self._pts_offset = pts_offset
        self._clock = clock
        self._convert = convert or BgrConverter()
        self._on_decoded = on_decoded
        self._stop = stop
        self._packets = packets
        self._anchored = False
        self._corrector = TimestampCorrector(stream.time_base, fps or FALLBACK_FPS)
        self._first_pts: float | None = None
        self.last_pts: float | None = None

        codec = stream.codec_context
        codec.thread_type = "AUTO"
        codec.thread_count = threads
        self._check_size(codec.width, codec.height, at=None)
        if packets is not None:
            packets.begin(stream)

    def _error(self, reason: str, kind: str) -> SourceError:
        return SourceError(self.camera, self.source, reason, kind)

    def _check_size(self, width: int, height: int, at: float | None) -> None:
        if width * height > self.max_pixels:
            where = "" if at is None else f" at {at:.2f} s"
            raise self._error(
                f"frame size {width}x{height}{where} exceeds the limit of {self.max_pixels} pixels "
                "(max_pixels); refusing to decode",
                "too_large",
            )

    def _frame_index(self, pts: float) -> int:
        if not self.keyframes_only or not self.fps or self._first_pts is None:
            return self.next_index
        # Only keyframes come out of the decoder: number them by their place in the stream.
        return max(self.next_index, self._index_start + round((pts - self._first_pts) * self.fps))

    def _on_frame(self, frame: av.VideoFrame) -> Frame | None:
        stats = self.stats
        stream_pts = pts = self._corrector(frame.pts, frame.dts, frame.time_base)
        if self._pts_offset is not None:
            pts = self._pts_offset(pts)
        if self._packets is not None and not self._anchored:
            # Where this session's packet times sit on the frame timeline, for clips.
            self._packets.anchor(pts - stream_pts)
            self._anchored = True
        if self._first_pts is None:
            self._first_pts = pts
        index = self._frame_index(pts)
        self.next_index = index + 1
        stats.decoded += 1
        if self._on_decoded is not None:
            self._on_decoded()
        if (frame.width, frame.height) != (stats.width, stats.height):
            self._check_size(frame.width, frame.height, at=pts)
            if stats.width:
                stats.resolution_changes += 1
                log.warning(
                    "camera %r: %s: resolution changed from %dx%d to %dx%d at %.2f s",
                    self.camera,
                    self.source,
                    stats.width,
                    stats.height,
                    frame.width,
                    frame.height,
                    pts,
                )
            stats.width, stats.height = frame.width, frame.height
        self.last_pts = pts
        if not self.selector.offer(pts):
            return None
        image = self._convert(frame)
        stats.picked += 1
        return Frame(camera=self.camera, index=index, pts=pts, wall_time=time.time(), image=image)

    def __iter__(self) -> Iterator[Frame]:
        stats = self.stats
        packets = self.container.demux(self.stream)
        consecutive_errors = 0
        last_progress = self._clock()
        while self._stop is None or not self._stop.is_set():
            read_started = self._clock()
            failure: tuple[str, str] | None = None
            try:
                packet = next(packets)
            except StopIteration:
                return
            except (av.error.FFmpegError, OSError) as exc:
                kind, reason = describe_error(
                    exc, self._raw_target, elapsed=self._clock() - read_started, timeout=self.read_timeout
                )
                if kind == "timeout":
                    kind, reason = "stalled", f"no data for {self.read_timeout:.1f} s (read timeout)"
                failure = (f"read failed after {stats.packets} packets: {reason}", kind)
            if failure is not None:
                # Raised outside the except block: PyAV's exception (holding the raw URL and its
                # password) must not ride along as __context__ into tracebacks or error trackers.
                # No local holds the new exception either: a frame <-> traceback cycle would keep
                # this reader, and with it the decoder and its threads, alive until a GC pass.
                raise self._error(*failure)
            flushing = packet.size == 0 and packet.pts is None
            if not flushing:
                stats.packets += 1
                if self._packets is not None:
                    self._packets.push(packet)
            if self.keyframes_only and not flushing and not packet.is_keyframe:
                continue
            try:
                frames = packet.decode()
                if self.keyframes_only and not flushing:
                    frames += self.stream.codec_context.decode(None)
                    self.stream.codec_context.flush_buffers()
            except av.error.MemoryError:
                raise self._error("out of memory while decoding", "too_large") from None
            except av.error.FFmpegError as exc:
                # Damaged data (InvalidDataError mostly): skip the packet, as FFmpeg does.
                stats.decode_errors += 1
                consecutive_errors += 1
                if consecutive_errors == 1:
                    log.warning(
                        "camera %r: %s: undecodable packet %d (at %s): %s; skipping",
                        self.camera,
                        self.source,
                        stats.packets,
                        "?" if packet.pts is None else f"{float(packet.pts * packet.time_base):.2f} s",
                        exc.strerror,
                    )
                if consecutive_errors >= self.max_consecutive_errors:
                    raise self._error(
                        f"{consecutive_errors} packets in a row could not be decoded "
                        f"(last: {exc.strerror}); stream is corrupt or not {self.stream.codec_context.name}",
                        "undecodable",
                    ) from None
                continue
            if consecutive_errors:
                log.warning(
                    "camera %r: %s: decoding resumed after %d undecodable packets",
                    self.camera,
                    self.source,
                    consecutive_errors,
                )
                consecutive_errors = 0
            for av_frame in frames:
                last_progress = self._clock()
                out = self._on_frame(av_frame)
                if out is not None:
                    yield out
            if self.stall_timeout is not None and not flushing:
                silent = self._clock() - last_progress
                if silent > self.stall_timeout:
                    raise self._error(
                        f"stalled: data arrives but no frame decoded for {silent:.1f} s", "stalled"
                    )
