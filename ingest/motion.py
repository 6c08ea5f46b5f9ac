"""Motion gating: skip the detector on frames where nothing moved and nothing is being tracked.

A :class:`MotionGate` compares each analysed frame with the picture of about
``compare_s`` seconds earlier, on a small grey (luma) picture: the frame is
shrunk with an area average (which also removes most sensor and encoder
noise), converted to grey, and the pixels whose grey level changed by at least
``pixel_delta`` are counted. The frame has motion when the changed fraction of
the unmasked picture reaches ``min_area``. Comparing over a fixed stream-time
interval, not with the previous frame, makes the thresholds mean the same at
5 frames/s and at 30. Everything is a few OpenCV calls on a picture about 160
pixels wide: a fraction of a millisecond per frame, against tens of
milliseconds for one inference.

The decision (:meth:`MotionGate.decide`) also needs the number of tracks the
camera's tracker holds, which the caller passes in (ingest knows nothing of
the tracker): the detector is skipped only when nothing moved *and* no track
is held, so a tracked object is never left without detections. The caller
feeds a skipped frame to the tracker as an empty detection set.

Opt-in (``still_tracks: reuse``): a still frame while tracks are held gets the
camera's last detections again instead of a new inference, refreshed every
``max_skip_s`` (2 s unless set). Nothing moved, so the detector would find the
same objects; a parked car or motorbike then no longer keeps the detector busy.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import cv2
import numpy as np
from pydantic import Field, field_validator

from ingest.config import ConfigModel

Point = tuple[float, float]


class MotionConfig(ConfigModel):
    """One camera's motion gate. Defaults come from the shared footage (see docs/notes/bench.md)."""

    width: int = Field(
        160, ge=16, le=1920, description="width (px) of the grey work picture; never upscaled, aspect kept"
    )
    pixel_delta: int = Field(
        15, ge=1, le=255, description="grey-level change (0-255) of a work pixel that counts as changed"
    )
    min_area: float = Field(
        0.0015,
        ge=0.0,
        le=1.0,
        description="fraction of the unmasked work picture that must change for the frame to have motion",
    )
    compare_s: float = Field(
        0.2, ge=0.0, le=5.0, description="compare with the picture this many stream seconds earlier"
    )
    max_skip_s: float | None = Field(
        None,
        gt=0,
        description="run the detector at least this often (stream seconds) even without motion; "
        "None: only on motion or while the tracker holds a track",
    )
    mask: list[list[Point]] = Field(
        default_factory=list,
        description="polygons, in source-frame pixels, whose changes are ignored (on-screen clocks, trees)",
    )
    still_tracks: Literal["detect", "reuse"] = Field(
        "detect",
        description="a still frame while tracks are held: 'detect' runs the detector; 'reuse' gives the "
        "tracker the last detections again (refreshed every max_skip_s, 2 s unless set)",
    )

    @field_validator("mask")
    @classmethod
    def _polygons(cls, value: list[list[Point]]) -> list[list[Point]]:
        for i, poly in enumerate(value):
            if len(poly) < 3:
                raise ValueError(f"mask polygon {i} needs at least 3 points")
        return value


REUSE_REFRESH_S = 2.0  # how long detections are reused when max_skip_s is not set


class GateDecision(StrEnum):
    """What to do with a frame: run the detector, skip it (empty detections), or reuse the last ones."""

    DETECT = "detect"
    SKIP = "skip"
    REUSE = "reuse"


@dataclass(frozen=True, slots=True)
class MotionResult:
    """One frame's motion: the changed fraction of the unmasked work picture and the verdict."""

    changed: float
    motion: bool


@dataclass(slots=True)
class GateStats:
    """Counters of one gate: frames decided, sent to the detector, skipped, given reused detections."""

    frames: int = 0
    detected: int = 0
    skipped: int = 0
    reused: int = 0

    @property
    def skipped_fraction(self) -> float:
        """Share of frames the detector did not run on (skipped or reused)."""
        return (self.skipped + self.reused) / self.frames if self.frames else 0.0


class MotionGate:
    """One camera's motion measure and skip decision. Not thread-safe: one per camera loop."""

    def __init__(self, config: MotionConfig | None = None) -> None:
        self.config = config or MotionConfig()
        self.stats = GateStats()
        self._history: deque[tuple[float, np.ndarray]] = deque()
        self._source_shape: tuple[int, int] | None = None
        self._work_size = (0, 0)  # (width, height) of the work picture
        self._keep: np.ndarray | None = None  # 255 where changes count, 0 under the mask
        self._keep_count = 0
        self._diff: np.ndarray | None = None
        self._last_detect_pts: float | None = None

    def reset(self) -> None:
        """Forget earlier pictures (stream restart, camera back): the next frame counts as motion."""
        self._history.clear()
        self._last_detect_pts = None

    def measure(self, image: np.ndarray, pts: float) -> MotionResult:
        """Compare ``image`` (BGR H x W x 3, or a grey/luma plane H x W) at stream time ``pts``
        with the picture of ``compare_s`` earlier (or the oldest one kept, at the start).

        The first picture, one after a size change and one whose time went back
        have no reference and count as motion.
        """
        grey = self._work(image)
        history = self._history
        if history and pts < history[-1][0]:
            history.clear()  # stream time went back: pictures of the old timeline are no reference
        # history[0] becomes the newest picture at least compare_s old (or the oldest kept, at the
        # start); pictures before it can never be a later frame's reference.
        cutoff = pts - self.config.compare_s
        while len(history) >= 2 and history[1][0] <= cutoff:
            history.popleft()
        reference = history[0][1] if history else None
        history.append((pts, grey))
        if reference is None:
            return MotionResult(1.0, True)
        diff = self._diff
        if diff is None or diff.shape != grey.shape:
            diff = self._diff = np.empty_like(grey)
        cv2.absdiff(grey, reference, dst=diff)
        cv2.threshold(diff, self.config.pixel_delta - 1, 255, cv2.THRESH_BINARY, dst=diff)
        if self._keep is not None:
            cv2.bitwise_and(diff, self._keep, dst=diff)
        changed = cv2.countNonZero(diff) / max(1, self._keep_count)
        return MotionResult(changed, changed > 0.0 and changed >= self.config.min_area)

    def decide(self, image: np.ndarray, pts: float, active_tracks: int) -> GateDecision:
        """What to do with this frame; motion is measured on every frame, so the reference stays
        current. See :meth:`choose` for the rule."""
        return self.choose(self.measure(image, pts).motion, pts, active_tracks)

    def choose(self, moved: bool, pts: float, active_tracks: int) -> GateDecision:
        """The rule, given the frame's motion. The detector runs when something moved, on the first
        frame, when stream time went back, when ``max_skip_s`` passed since it last ran, and when
        the tracker holds any track (new, confirmed, or lost but not yet given up) unless
        ``still_tracks`` is 'reuse'. Otherwise the frame is skipped (no track) or gets the last
        detections again (tracks held, 'reuse')."""
        cfg = self.config
        last = self._last_detect_pts
        overdue = last is not None and cfg.max_skip_s is not None and pts - last >= cfg.max_skip_s
        if moved or last is None or pts < last or overdue:
            decision = GateDecision.DETECT
        elif active_tracks == 0:
            decision = GateDecision.SKIP
        elif cfg.still_tracks == "detect" or pts - last >= (cfg.max_skip_s or REUSE_REFRESH_S):
            decision = GateDecision.DETECT
        else:
            decision = GateDecision.REUSE
        stats = self.stats
        stats.frames += 1
        if decision is GateDecision.DETECT:
            stats.detected += 1
            self._last_detect_pts = pts
        elif decision is GateDecision.SKIP:
            stats.skipped += 1
        else:
            stats.reused += 1
        return decision

    # -- helpers --------------------------------------------------------------------------------------

    def _work(self, image: np.ndarray) -> np.ndarray:
        """The grey work picture. Shrinks first and converts after, so the colour conversion runs
        on about 1/64 of the pixels of a 720p frame."""
        h, w = image.shape[:2]
        if (h, w) != self._source_shape:
            self._resize_for(h, w)
        ww, wh = self._work_size
        small = image if (wh, ww) == (h, w) else cv2.resize(image, (ww, wh), interpolation=cv2.INTER_AREA)
        if small.ndim == 3:
            return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        return small.copy() if small is image else small  # the caller may reuse its buffer

    def _resize_for(self, h: int, w: int) -> None:
        self._source_shape = (h, w)
        self._history.clear()
        ww = min(self.config.width, w)
        wh = max(1, round(h * ww / w))
        self._work_size = (ww, wh)
        if not self.config.mask:
            self._keep, self._keep_count = None, ww * wh
            return
        keep = np.full((wh, ww), 255, np.uint8)
        scale = np.array([ww / w, wh / h])
        polys = [np.round(np.asarray(p, np.float64) * scale).astype(np.int32) for p in self.config.mask]
        cv2.fillPoly(keep, polys, 0)
        self._keep, self._keep_count = keep, cv2.countNonZero(keep)
