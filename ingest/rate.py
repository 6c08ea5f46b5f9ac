"""Pick the frames to analyse by their timestamps, not by counting them."""

from __future__ import annotations

import math


class RateSelector:
    """Decide, frame by frame, whether a frame is due for analysis at ``fps`` frames per second.

    Due times lie on a fixed grid ``start + k / fps`` anchored at the first frame offered, so
    the analysed rate is exact on average whatever the source rate (25, 29.97, variable):
    a frame is kept when its pts reaches the next due time. After a gap in the stream the
    missed slots are skipped, not caught up in a burst. A jump backwards of more than
    ``discontinuity_s`` (a new recording, a camera clock reset) restarts the grid; smaller
    backward steps (timestamp jitter) are never picked, so picked pts strictly increase
    within a continuous stream.

    ``fps=None`` keeps every frame.
    """

    def __init__(self, fps: float | None, *, tolerance_s: float = 1e-4, discontinuity_s: float = 1.0) -> None:
        if fps is not None and not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"analysis fps must be a positive number or None, got {fps!r}")
        if tolerance_s < 0 or (fps is not None and tolerance_s >= 0.5 / fps):
            raise ValueError(f"tolerance_s must be in [0, half the analysis interval), got {tolerance_s!r}")
        self.fps = fps
        self.interval = None if fps is None else 1.0 / fps
        # Timestamps come from integer ticks in time bases as coarse as 1/10000 s: a frame a
        # rounding error early still counts as on time.
        self.tolerance_s = tolerance_s
        self.discontinuity_s = discontinuity_s
        self._start: float | None = None
        self._slot = 0  # index of the next due slot on the grid
        self._last: float | None = None  # pts of the last frame offered

    def reset(self) -> None:
        """Forget the grid: the next frame offered is picked and anchors a new one."""
        self._start = None
        self._slot = 0
        self._last = None

    @property
    def next_due(self) -> float | None:
        """Stream time at which the next frame becomes due (None before the first frame)."""
        if self._start is None or self.interval is None:
            return None
        return self._start + self._slot * self.interval

    def offer(self, pts: float) -> bool:
        """Return True if the frame with this pts (seconds) should be analysed."""
        previous, self._last = self._last, pts
        if self.interval is None:
            return True
        if self._start is None or (previous is not None and pts < previous - self.discontinuity_s):
            self._start = pts
            self._slot = 1
            return True
        due = self._start + self._slot * self.interval
        if pts + self.tolerance_s < due:
            return False
        # Next slot strictly after this frame: slots the stream skipped over are dropped.
        # (max: the division may round below the slot the comparison above just accepted)
        self._slot = max(
            self._slot + 1, math.floor((pts + self.tolerance_s - self._start) / self.interval) + 1
        )
        return True
