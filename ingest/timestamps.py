"""Turn decoded frames' pts/dts into one trustworthy presentation time in seconds."""

from __future__ import annotations

from fractions import Fraction

MIN_STEP_S = 1e-6


class TimestampCorrector:
    """FFmpeg's ``best_effort_timestamp`` heuristic, plus a fallback when a frame has neither.

    Frames leave the decoder in presentation order, so their true timestamps increase. Some
    containers lie: AVI with packed B-frames hands the decoder pts in *decode* order
    (1, 4, 6, 5, 7 ...), while the frames' dts run 3, 4, 5, 6, 7. Like libavcodec's
    ``guess_correct_pts`` this counts how often pts and dts each fail to increase and trusts
    the one that fails less. A frame with neither (the first frame of an RTSP session before
    RTCP sync) gets the previous time plus one frame interval, or ``index / fps`` when no time
    is known yet. Output times never step back by less than ``discontinuity_s``; a larger jump
    back (a new recording, a camera clock reset) passes through for the rate selector to see.
    """

    def __init__(self, time_base: Fraction | None, fps: float | None, discontinuity_s: float = 1.0) -> None:
        self.time_base = time_base
        self.discontinuity_s = discontinuity_s
        self.frame_interval = 1.0 / fps if fps else None
        self.faulty_pts = 0
        self.faulty_dts = 0
        self._last_pts: int | None = None
        self._last_dts: int | None = None
        self._last_seconds: float | None = None
        self._count = 0

    def __call__(self, pts: int | None, dts: int | None, time_base: Fraction | None = None) -> float:
        """Presentation time in seconds of the next frame out of the decoder."""
        index = self._count
        self._count += 1
        if dts is not None:
            self.faulty_dts += self._last_dts is not None and dts <= self._last_dts
            self._last_dts = dts
        elif pts is not None:
            self._last_dts = pts
        if pts is not None:
            self.faulty_pts += self._last_pts is not None and pts <= self._last_pts
            self._last_pts = pts
        elif dts is not None:
            self._last_pts = dts

        if pts is not None and (self.faulty_pts <= self.faulty_dts or dts is None):
            ticks: int | None = pts
        else:
            ticks = dts
        base = time_base or self.time_base
        if ticks is not None and base is not None:
            seconds = float(ticks * base)
        elif self._last_seconds is not None and self.frame_interval is not None:
            seconds = self._last_seconds + self.frame_interval
        elif self.frame_interval is not None:
            seconds = index * self.frame_interval
        else:
            seconds = self._last_seconds if self._last_seconds is not None else 0.0
        last = self._last_seconds
        if last is not None and last - self.discontinuity_s < seconds <= last:
            # Frames leave the decoder in presentation order, so a small step back is an
            # artefact (the switch from pts to dts above, a muxer's rounding): keep order.
            seconds = last + MIN_STEP_S
        self._last_seconds = seconds
        return seconds
