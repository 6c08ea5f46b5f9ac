"""Packets of a :class:`~ingest.packet_ring.PacketRun` into an MP4, stream-copied (no re-encode).

The output's timestamps start at 0 (the first keyframe's decode time), keep the source's
time base, and stay continuous across the sessions of a run (a reconnect, a replay loop):
each session's ticks are shifted by its offset on the frame timeline. The ``moov`` index
goes first (``movflags +faststart``) so a browser can start playing before the whole file
has arrived; FFmpeg writes that by rewriting the file, which needs a real file, so the
MP4 is made in a temporary directory and read back.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import av

from ingest.packet_ring import PacketRun, PacketSession


class ClipFormatError(ValueError):
    """The run's codec cannot be stream-copied into an MP4 (e.g. MS-MPEG4 from an old AVI)."""


def remux_mp4(run: PacketRun, *, tmp_dir: str | Path | None = None) -> bytes:
    """The MP4 file of ``run``'s packets; :class:`ClipFormatError` when MP4 cannot carry its codec."""
    first = run.entries[0].session
    if first.template is None:
        raise ClipFormatError(first.unsupported or f"{first.codec} cannot be stream-copied into MP4")
    with tempfile.TemporaryDirectory(prefix="khupho-clip-", dir=tmp_dir) as tmp:
        path = Path(tmp) / "clip.mp4"
        try:
            out = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
        except av.error.FFmpegError as exc:  # pragma: no cover - a broken FFmpeg build
            raise ClipFormatError(f"cannot create an MP4 muxer: {exc}") from None
        try:
            stream = out.add_stream_from_template(first.template)
            stream.time_base = first.time_base
            _mux(out, stream, run, first)
            out.close()  # writes the index and moves it to the front
        except (av.error.FFmpegError, ValueError) as exc:  # ValueError: PyAV's "format does not support"
            with contextlib.suppress(av.error.FFmpegError):
                out.close()
            raise ClipFormatError(f"{first.codec} cannot be stream-copied into MP4: {exc}") from None
        return path.read_bytes()


def _mux(out: av.container.OutputContainer, stream: av.video.stream.VideoStream, run: PacketRun,
         first: PacketSession) -> None:  # fmt: skip
    base = min(run.entries[0].dts, run.entries[0].pts)
    shifts: dict[int, int] = {}
    last_dts: int | None = None
    for entry in run.entries:
        session = entry.session
        shift = shifts.get(session.number)
        if shift is None:
            # Same time base (compatible sessions): the offset difference in ticks places it.
            shift = shifts[session.number] = round((session.offset - first.offset) / first.time_base) - base
        dts, pts = entry.dts + shift, entry.pts + shift
        # The MP4 muxer refuses decode times that do not increase (a reconnect's rounding).
        if last_dts is not None and dts <= last_dts:
            dts = last_dts + 1
        pts = max(pts, dts)
        last_dts = dts
        packet = av.Packet(entry.packet)  # a copy: muxing empties the packet it is given
        packet.pts, packet.dts = pts, dts
        packet.time_base = first.time_base
        if entry.packet.duration:
            packet.duration = entry.packet.duration
        packet.is_keyframe = entry.keyframe
        packet.stream = stream
        out.mux(packet)
