"""Open a file or stream URL with PyAV and turn every way that can fail into a clear SourceError."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
from av.container import InputContainer
from av.video.stream import VideoStream

from ingest.errors import SourceError
from ingest.urls import is_live_url, mask_text, mask_url

Timeout = float | tuple[float, float] | None


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What the container says about the video stream (before any frame is decoded)."""

    camera: str
    source: str  # masked
    format_name: str
    codec: str
    width: int
    height: int
    fps: float | None  # average rate; None when the container does not know it
    frame_count: int | None  # container's count (packets in the index); None when unknown
    duration: float | None  # seconds; None for live streams and some containers
    start_time: float | None  # seconds
    time_base: Fraction | None
    is_live: bool


def _timeout_parts(timeout: Timeout) -> tuple[float | None, float | None]:
    if timeout is None:
        return None, None
    if isinstance(timeout, tuple):
        return timeout
    return timeout, timeout


def describe_error(
    exc: BaseException, target: str, *, elapsed: float, timeout: float | None
) -> tuple[str, str]:
    """(kind, reason) for an exception PyAV raised while opening or reading ``target``.

    The reason never contains the raw URL or its password.
    """
    strerror = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    detail = mask_text(str(strerror), target)
    # PyAV's interrupt callback aborts a blocked read/open when the timeout passes; FFmpeg
    # then reports whatever error the interrupted step produced (often "Invalid data").
    timed_out = timeout is not None and elapsed >= 0.9 * timeout
    if isinstance(exc, av.error.HTTPUnauthorizedError):
        return "unauthorized", "authentication failed (401 Unauthorized): check the user name and password"
    if isinstance(exc, av.error.HTTPForbiddenError):
        return "forbidden", "access forbidden (403 Forbidden) for these credentials"
    if isinstance(exc, av.error.HTTPNotFoundError):
        return "not_found", "no stream at this path on the server (404 Not Found)"
    if isinstance(exc, (av.error.HTTPClientError, av.error.HTTPServerError, av.error.HTTPError)):
        return "protocol", f"server refused the request: {detail}"
    if isinstance(exc, ConnectionRefusedError):
        return "refused", "connection refused: nothing is listening at this host and port"
    if isinstance(exc, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        return "io", f"connection dropped by the server: {detail}"
    if isinstance(exc, FileNotFoundError):
        return "not_found", "no such file"
    if isinstance(exc, IsADirectoryError):
        return "not_found", "is a directory, not a video file"
    if isinstance(exc, PermissionError):
        return "permission", "permission denied"
    if isinstance(exc, (av.error.ExitError, TimeoutError)) or timed_out:
        return "timeout", f"no answer within {timeout:.1f} s" if timeout else f"timed out: {detail}"
    if isinstance(exc, MemoryError):
        return "too_large", f"out of memory while decoding: {detail}"
    if isinstance(exc, av.error.InvalidDataError):
        return "unrecognised", (
            "unrecognised or damaged container: not a video file, or a recording cut short before "
            f"its index was written (FFmpeg: {detail})"
        )
    if isinstance(exc, OSError):
        if is_live_url(target):
            # FFmpeg reports a host name that does not resolve as a bare EIO.
            return "unreachable", f"cannot reach the camera (unknown host name or network down): {detail}"
        return "io", f"I/O error: {detail}"
    return "io", f"{type(exc).__name__}: {detail}"


def open_input(
    target: str | os.PathLike[str],
    *,
    camera: str,
    options: dict[str, str] | None = None,
    timeout: Timeout = None,
) -> InputContainer:
    """``av.open`` for reading, raising :class:`SourceError` (masked, with a reason) on failure."""
    target = os.fspath(target)
    shown = mask_url(target)
    if not is_live_url(target) and "://" not in target:
        path = Path(target)
        if not path.exists():
            raise SourceError(camera, shown, "no such file", "not_found")
        if path.is_dir():
            raise SourceError(camera, shown, "is a directory, not a video file", "not_found")
        if path.stat().st_size == 0:
            raise SourceError(camera, shown, "file is empty (0 bytes)", "empty")
    open_timeout, _read_timeout = _timeout_parts(timeout)
    started = time.monotonic()
    try:
        return av.open(target, mode="r", options=options or {}, timeout=timeout)
    except (av.error.FFmpegError, OSError, MemoryError) as exc:
        kind, reason = describe_error(exc, target, elapsed=time.monotonic() - started, timeout=open_timeout)
    # Raised outside the except block so PyAV's exception, whose text holds the raw URL and its
    # password, is neither the cause nor the __context__ of the SourceError.
    raise SourceError(camera, shown, reason, kind)


def video_stream(container: InputContainer, *, camera: str, source: str) -> VideoStream:
    """The first video stream, or a SourceError listing what the input holds instead."""
    if container.streams.video:
        return container.streams.video[0]
    found = ", ".join(
        f"{s.type} {s.codec_context.name if s.codec_context else '?'}" for s in container.streams
    )
    raise SourceError(camera, source, f"no video stream (input has: {found or 'no streams'})", "no_video")


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def source_info(
    container: InputContainer, stream: VideoStream, *, camera: str, source: str, live: bool
) -> SourceInfo:
    rate: Any = stream.average_rate or stream.guessed_rate
    fps = float(rate) if rate else None
    duration = _seconds(stream.duration, stream.time_base)
    if duration is None and container.duration is not None and not live:
        duration = container.duration / 1_000_000
    codec = stream.codec_context
    return SourceInfo(
        camera=camera,
        source=source,
        format_name=container.format.name,
        codec=codec.name if codec else "unknown",
        width=codec.width if codec else 0,
        height=codec.height if codec else 0,
        fps=fps,
        frame_count=stream.frames or None,
        duration=duration,
        start_time=_seconds(stream.start_time, stream.time_base),
        time_base=stream.time_base,
        is_live=live,
    )
