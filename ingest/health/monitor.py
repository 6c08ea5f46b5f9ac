"""One camera's health monitor: frames in, frozen/blocked/blurred/moved starts and clears out."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ingest.health.conditions import HealthChange, HealthCondition, HealthMeasures
from ingest.health.config import HealthConfig
from ingest.health.measures import (
    LIMITED_TO_FULL_LUT,
    PhaseCorrelator,
    block_std,
    changed_fraction,
    detail,
    medians,
    to_work,
)
from ingest.health.timer import ConditionTimer, Transition

FROZEN, BLOCKED, BLURRED, MOVED = (
    HealthCondition.FROZEN,
    HealthCondition.BLOCKED,
    HealthCondition.BLURRED,
    HealthCondition.MOVED,
)

_MIN_LEARN_SAMPLES = 3
# Below this learned phase-correlation peak the reference matches nothing well (noise, a blank
# view): a similarity relative to it would be noise too.
_MIN_BASE_PEAK = 0.02


@dataclass(slots=True)
class _LearnSample:
    pts: float
    small: np.ndarray
    sharpness: float
    norm_sharpness: float
    blank_fraction: float


@dataclass(slots=True)
class _Verdict:
    """One condition's reading of one sample: fault or not, and the measure behind it."""

    fault: bool
    measure: str
    value: float
    threshold: float


class CameraHealthMonitor:
    """Detects a frozen, blocked, blurred or moved picture on one camera.

    Call ``update`` with every decoded frame (BGR, or the grey/luma plane to
    skip colour conversion) and its stream time; it analyses ``analysis_fps``
    samples per second on a ``work_width`` grey picture and returns the
    conditions that started or cleared. The first ``learn_s`` seconds learn
    the reference view and the sharpness baseline (``learning``); until then
    only frozen and blacked-out pictures are reported.

    A fault explains the symptoms of those after it, so it holds their timers
    (no start, no clear) while present: a blocked picture also looks blurred,
    frozen and moved; a blurred one has lost the fine changes the frozen check
    counts and the detail the moved check matches; a frozen one (once
    confirmed) says nothing new about the view. Order: blocked, blurred,
    frozen, moved.

    ``fps_hint`` is the stream's nominal frame rate: a frame up to half a frame
    interval before a sample is due is taken, so the sampling does not alias
    against the frame grid. ``limited_range=True`` when passing a limited-range (tv, 16-235) luma plane,
    such as the Y plane of most H.264 streams. Not thread-safe: one monitor per
    camera, one caller.
    """

    def __init__(
        self,
        camera: str,
        config: HealthConfig | None = None,
        fps_hint: float | None = None,
        *,
        limited_range: bool = False,
    ) -> None:
        self.camera = camera
        self.config = config if config is not None else HealthConfig()
        c = self.config
        self._period = 1.0 / c.analysis_fps
        # Accept a frame up to half a frame early, so 25 fps at 2 Hz takes every 12th-13th frame.
        self._tol = 0.5 / fps_hint if fps_hint and fps_hint > 0 else 0.0
        self._lut = LIMITED_TO_FULL_LUT if limited_range else None
        self._timers = {
            FROZEN: ConditionTimer(c.frozen_after_s, c.clear_after_s),
            BLOCKED: ConditionTimer(c.blocked_after_s, c.clear_after_s),
            BLURRED: ConditionTimer(c.blurred_after_s, c.clear_after_s),
            MOVED: ConditionTimer(c.moved_after_s, c.clear_after_s),
        }
        self._next_due: float | None = None
        self._seen_pts: float | None = None
        self._last_pts: float | None = None  # last analysed sample
        self._shape: tuple[int, int] | None = None
        self._src_width = 0
        self._anchor: np.ndarray | None = None  # frozen check: picture since which nothing changed
        self._anchor_pts = 0.0
        self._blocked_by = "blank_fraction"
        self._moved_by = "similarity"
        self.last: HealthMeasures | None = None
        self._reset_learning()

    # --- public ----------------------------------------------------------------------------------

    @property
    def active(self) -> frozenset[HealthCondition]:
        """The conditions in force now."""
        return frozenset(cond for cond, timer in self._timers.items() if timer.active)

    @property
    def learning(self) -> bool:
        """True until the reference view and baselines are learned."""
        return not self._learned

    def update(self, image: np.ndarray, pts: float) -> list[HealthChange]:
        """Feed one frame (BGR H x W x 3 or grey H x W, uint8) with its stream time in seconds."""
        pts = float(pts)
        if not self._due(pts):
            return []
        c = self.config
        work = to_work(image, c.work_width, self._lut)
        if work.shape != self._shape:
            self._new_geometry(work.shape, image.shape[1])
        elif self._last_pts is not None and (pts < self._last_pts or pts - self._last_pts > c.max_gap_s):
            self._discontinuity()
        dt = 0.0 if self._last_pts is None or pts < self._last_pts else pts - self._last_pts
        self._last_pts = pts
        return self._analyse(work, pts, dt)

    # --- sampling ------------------------------------------------------------------------------

    def _due(self, pts: float) -> bool:
        backwards = self._seen_pts is not None and pts < self._seen_pts
        self._seen_pts = pts
        if self._next_due is not None and not backwards and pts < self._next_due - self._tol:
            return False
        if self._next_due is None or backwards or pts - self._next_due >= self._period:
            self._next_due = pts + self._period
        else:
            self._next_due += self._period  # keep the grid so the rate does not creep
        return True

    def _new_geometry(self, shape: tuple[int, int], src_width: int) -> None:
        """First sample or a new resolution: everything learned about the picture is void."""
        self._shape = shape
        self._src_width = src_width
        h, w = shape
        mw = min(self.config.moved_width, w)
        self._small_size = (mw, max(1, round(h * mw / w)))
        self._correlator = PhaseCorrelator((self._small_size[1], self._small_size[0]))
        self._prev_correlator = PhaseCorrelator((self._small_size[1], self._small_size[0]))
        self._block_px = max(4, round(w / 16))
        self._discontinuity()
        self._reset_learning()

    def _discontinuity(self) -> None:
        for timer in self._timers.values():
            timer.hold()
        self._anchor = None
        if not self._learned:
            self._reset_learning()

    def _reset_learning(self) -> None:
        self._learned = False
        self._learn: list[_LearnSample] = []
        self._ref: np.ndarray | None = None
        self._base_sharp = self._base_norm = self._base_peak = 0.0
        self._textured = 0.0

    # --- analysis ------------------------------------------------------------------------------

    def _analyse(self, work: np.ndarray, pts: float, dt: float) -> list[HealthChange]:
        c = self.config
        h = c.hysteresis
        t = self._timers
        mean_arr, std_arr = cv2.meanStdDev(work)
        mean, std = float(mean_arr[0, 0]), float(std_arr[0, 0])
        blank = float(np.mean(block_std(work, self._block_px) < c.blank_block_std))
        sharp, norm = detail(work, std)
        small = _resize(work, self._small_size)
        detail_ratio = sharp_ratio = None
        if self._learned:
            detail_ratio = sharp / max(self._base_sharp, 1e-6)
            sharp_ratio = max(detail_ratio, norm / max(self._base_norm, 1e-9))

        changes: list[HealthChange] = []
        checks = c.checks

        # Blocked: blacked out (dark and flat) or covered (mostly blank and the detail gone).
        blocked = self._blocked(mean, std, blank, detail_ratio)
        if BLOCKED in checks:
            self._step(changes, BLOCKED, blocked, pts)
        held = blocked.fault and BLOCKED in checks
        frozen_before = t[FROZEN].active and FROZEN in checks

        # Blurred: detail fell against the camera's own baseline.
        blurred_fault = False
        if sharp_ratio is not None:
            limit = c.blurred_ratio * (1 + h if t[BLURRED].active else 1)
            blurred_fault = sharp_ratio < limit
            if BLURRED in checks:
                if held:
                    t[BLURRED].hold()
                else:
                    verdict = _Verdict(blurred_fault, "sharpness_ratio", sharp_ratio, limit)
                    self._step(changes, BLURRED, verdict, pts)
            if not (held or frozen_before or blurred_fault or t[BLURRED].active) and c.adapt_s:
                a = min(1.0, dt / c.adapt_s)
                self._base_sharp += a * (sharp - self._base_sharp)
                self._base_norm += a * (norm - self._base_norm)
        # A blurred picture has lost the fine changes the frozen check counts, and the layout
        # detail the moved check matches: both wait.
        held = held or (blurred_fault and BLURRED in checks)

        # Frozen: nothing changed against the anchor picture for frozen_after_s.
        changed, unchanged_s = 1.0, 0.0
        if held or self._anchor is None:
            self._anchor, self._anchor_pts = work, pts
            t[FROZEN].hold()
        else:
            changed = changed_fraction(work, self._anchor, c.frozen_pixel_delta)
            limit = c.frozen_changed_fraction * (1 + h if frozen_before else 1)
            unchanged = changed < limit
            if unchanged:
                unchanged_s = pts - self._anchor_pts
            elif not frozen_before:
                # While frozen the anchor stays the frozen picture, so one odd frame does not clear it.
                self._anchor, self._anchor_pts = work, pts
            if FROZEN in checks:
                verdict = _Verdict(unchanged, "changed_fraction", changed, limit)
                self._step(changes, FROZEN, verdict, pts, onset=self._anchor_pts)
                if frozen_before and not t[FROZEN].active:  # cleared: the live picture anchors now
                    self._anchor, self._anchor_pts = work, pts
        held = held or (t[FROZEN].active and FROZEN in checks)

        # Learning the reference view and baselines (healthy samples only).
        if not self._learned and not held:
            self._learn_sample(_LearnSample(pts, small, sharp, norm, blank))

        # Moved: the view no longer matches the reference (shifted, or rotated / another scene).
        shift_px = similarity = None
        if self._learned and self._textured >= c.min_textured and self._base_peak >= _MIN_BASE_PEAK:
            assert self._ref is not None
            dx, dy, peak = self._correlator.match(small)
            shift_px = math.hypot(dx, dy) * self._src_width / self._small_size[0]
            similarity = peak / self._base_peak
            moved = self._moved(shift_px, similarity, t[MOVED].active)
            if MOVED in checks:
                if held:
                    t[MOVED].hold()
                else:
                    self._step(changes, MOVED, moved, pts)
            if not held and not moved.fault and not t[MOVED].active and c.adapt_s:
                a = min(1.0, dt / c.adapt_s)
                self._ref += a * (small - self._ref)
                self._correlator.set_reference(self._ref)
                self._base_peak += a * (peak - self._base_peak)

        self.last = HealthMeasures(
            pts=pts,
            mean_luma=mean,
            luma_std=std,
            blank_fraction=blank,
            changed_fraction=changed,
            unchanged_s=unchanged_s,
            sharpness=sharp,
            detail_ratio=detail_ratio,
            sharpness_ratio=sharp_ratio,
            shift_px=shift_px,
            similarity=similarity,
            learning=not self._learned,
        )
        return changes

    def _blocked(self, mean: float, std: float, blank: float, detail_ratio: float | None) -> _Verdict:
        c = self.config
        loose = c.hysteresis if self._timers[BLOCKED].active else 0.0
        dark_luma, dark_std = c.dark_luma * (1 + loose), c.dark_std * (1 + loose)
        if mean <= dark_luma and std <= dark_std:
            self._blocked_by = "mean_luma"
            return _Verdict(True, "mean_luma", mean, dark_luma)
        fraction = c.blocked_fraction * (1 - loose)
        covered = (
            detail_ratio is not None
            and self._textured >= c.min_textured
            and blank >= fraction
            and detail_ratio <= c.blocked_sharpness_ratio * (1 + loose)
        )
        if covered:
            self._blocked_by = "blank_fraction"
            return _Verdict(True, "blank_fraction", blank, fraction)
        if self._blocked_by == "mean_luma":
            return _Verdict(False, "mean_luma", mean, dark_luma)
        return _Verdict(False, "blank_fraction", blank, fraction)

    def _moved(self, shift_px: float, similarity: float, active: bool) -> _Verdict:
        c = self.config
        loose = c.hysteresis if active else 0.0
        min_similarity, max_shift = c.moved_similarity * (1 + loose), c.moved_px * (1 - loose)
        # A view that does not match has no meaningful shift: similarity decides first.
        if similarity < min_similarity:
            self._moved_by = "similarity"
            return _Verdict(True, "similarity", similarity, min_similarity)
        if shift_px > max_shift:
            self._moved_by = "shift_px"
            return _Verdict(True, "shift_px", shift_px, max_shift)
        if self._moved_by == "shift_px":
            return _Verdict(False, "shift_px", shift_px, max_shift)
        return _Verdict(False, "similarity", similarity, min_similarity)

    def _step(
        self,
        changes: list[HealthChange],
        cond: HealthCondition,
        verdict: _Verdict,
        pts: float,
        onset: float | None = None,
    ) -> None:
        event = self._timers[cond].update(verdict.fault, pts, onset)
        if event is not None:
            changes.append(
                HealthChange(
                    camera=self.camera,
                    condition=cond,
                    active=event.transition is Transition.START,
                    pts=pts,
                    since=event.since,
                    measure=verdict.measure,
                    value=verdict.value,
                    threshold=verdict.threshold,
                )
            )

    def _learn_sample(self, sample: _LearnSample) -> None:
        c = self.config
        if self._learn:
            # A jump between consecutive samples (a camera settling, a cut from another view)
            # restarts learning, so the reference is one steady view.
            dx, dy, _ = self._prev_correlator.match(sample.small)
            if math.hypot(dx, dy) * self._src_width / self._small_size[0] > c.moved_px:
                self._learn.clear()
        self._learn.append(sample)
        self._prev_correlator.set_reference(sample.small)
        if len(self._learn) < _MIN_LEARN_SAMPLES or sample.pts - self._learn[0].pts < c.learn_s:
            return
        smalls = np.stack([s.small for s in self._learn])
        ref, others = medians(smalls)
        self._ref = ref.astype(np.float32)
        # Each sample against the median of the others: a sample matched against a reference it
        # is part of scores too high, most in busy scenes, and later samples would look worse.
        peaks = []
        for small, rest in zip(smalls, others, strict=True):
            self._prev_correlator.set_reference(rest)
            peaks.append(self._prev_correlator.match(small)[2])
        self._base_peak = float(np.median(peaks))
        self._correlator.set_reference(self._ref)
        self._base_sharp = float(np.median([s.sharpness for s in self._learn]))
        self._base_norm = float(np.median([s.norm_sharpness for s in self._learn]))
        self._textured = 1.0 - float(np.median([s.blank_fraction for s in self._learn]))
        self._learn = []
        self._learned = True


def _resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (img.shape[1], img.shape[0]) == size:
        return img.astype(np.float32)
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA).astype(np.float32)
