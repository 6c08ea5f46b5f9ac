"""Road-plane calibration and per-track speed.

A camera is calibrated with four image points and their positions on the road
plane in metres (the recipe of supervision's speed-estimation example): the
four pairs give the homography ``H`` that maps a pixel to metres. A vehicle's
position is the bottom centre of its box (where it touches the road), mapped
through ``H``.

Speed is robust rather than frame-to-frame: positions are kept for a window of
stream time (``window_s``, at least ``min_span_s`` of it filled), a new position
that would need an implausible jump from the last accepted one is rejected (a
box snapping to a neighbour, an id switch), and the speed is the median over
all pairs of kept positions at least half the span apart (a Theil-Sen style
estimate: a single bad box moves it little). Without enough samples the speed
is ``nan``: no number is better than a wrong one.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

MS_TO_KMH = 3.6


class CalibrationError(ValueError):
    """The four point pairs do not define a usable road plane."""


class RoadPlane:
    """The homography between a camera's pixels and metres on the road plane."""

    def __init__(
        self, image_points: Sequence[Sequence[float]], world_points: Sequence[Sequence[float]]
    ) -> None:
        src = np.asarray(image_points, dtype=np.float64).reshape(-1, 2)
        dst = np.asarray(world_points, dtype=np.float64).reshape(-1, 2)
        if src.shape != (4, 2) or dst.shape != (4, 2):
            raise CalibrationError("calibration needs exactly four image points and four road points")
        for name, pts in (("image", src), ("road", dst)):
            if _three_collinear(pts):
                raise CalibrationError(f"three of the four {name} points are on one line")
        self.to_world_matrix = cv2.getPerspectiveTransform(src.astype(np.float32), dst.astype(np.float32))
        self.to_image_matrix = np.linalg.inv(self.to_world_matrix)

    def to_world(self, points: np.ndarray) -> np.ndarray:
        """Pixels [N, 2] to metres [N, 2]."""
        return _apply(self.to_world_matrix, points)

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Metres [N, 2] to pixels [N, 2]."""
        return _apply(self.to_image_matrix, points)


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(pts) == 0:
        return np.zeros((0, 2))
    homo = np.hstack([pts, np.ones((len(pts), 1))]) @ matrix.T
    return homo[:, :2] / homo[:, 2:3]


def _three_collinear(pts: np.ndarray) -> bool:
    scale = max(float(np.ptp(pts, axis=0).max()), 1e-9)
    for i in range(4):
        a, b, c = (pts[j] for j in range(4) if j != i)
        cross = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
        if abs(cross) < 1e-6 * scale * scale:
            return True
    return False


@dataclass(frozen=True, slots=True)
class TrackSpeeds:
    """Per-row results of one frame, aligned with the tracker ids passed in."""

    world: np.ndarray  # [N, 2] metres on the road plane
    speed_kmh: np.ndarray  # [N], nan where not enough samples
    velocity: np.ndarray  # [N, 2] m/s on the road plane, nan where unknown


class _History:
    __slots__ = ("rejected", "samples")

    def __init__(self) -> None:
        self.samples: deque[tuple[float, float, float]] = deque()
        self.rejected = 0


class SpeedEstimator:
    """Robust speed of every track of one camera; one instance per camera loop (not thread-safe)."""

    def __init__(
        self,
        plane: RoadPlane,
        *,
        window_s: float = 1.0,
        min_span_s: float = 0.5,
        min_samples: int = 3,
        max_speed_kmh: float = 250.0,
        forget_after_s: float = 2.0,
    ) -> None:
        if min_span_s > window_s:
            raise ValueError("min_span_s must not exceed window_s")
        self.plane = plane
        self.window_s = window_s
        self.min_span_s = min_span_s
        self.min_samples = max(2, min_samples)
        self.max_speed_ms = max_speed_kmh / MS_TO_KMH
        self.forget_after_s = forget_after_s
        self._tracks: dict[int, _History] = {}

    def update(self, tracker_ids: np.ndarray, anchors_px: np.ndarray, pts: float) -> TrackSpeeds:
        """Add this frame's anchors (bottom centres, pixels) and return every row's speed."""
        ids = np.asarray(tracker_ids, dtype=np.int64).reshape(-1)
        world = self.plane.to_world(anchors_px)
        speed = np.full(len(ids), np.nan)
        velocity = np.full((len(ids), 2), np.nan)
        for row, (tid, (x, y)) in enumerate(zip(ids.tolist(), world.tolist(), strict=True)):
            hist = self._tracks.get(tid)
            if hist is None:
                hist = self._tracks[tid] = _History()
            self._add(hist, pts, x, y)
            estimate = self._estimate(hist)
            if estimate is not None:
                velocity[row] = estimate
                speed[row] = math.hypot(*estimate) * MS_TO_KMH
        self._forget(pts)
        return TrackSpeeds(world=world, speed_kmh=speed, velocity=velocity)

    def reset(self) -> None:
        self._tracks.clear()

    def _add(self, hist: _History, pts: float, x: float, y: float) -> None:
        samples = hist.samples
        if samples:
            t0, x0, y0 = samples[-1]
            dt = pts - t0
            if dt <= 0:
                return  # the same frame twice or time going back: keep what we have
            if math.hypot(x - x0, y - y0) / dt > self.max_speed_ms:
                hist.rejected += 1
                if hist.rejected < 3:
                    return
                # Three implausible jumps in a row: the old positions were the wrong ones
                # (an id switch); start this track's history afresh.
                samples.clear()
        hist.rejected = 0
        samples.append((pts, x, y))
        while samples and samples[0][0] < pts - self.window_s - 1e-9:
            samples.popleft()

    def _estimate(self, hist: _History) -> tuple[float, float] | None:
        samples = hist.samples
        if len(samples) < self.min_samples:
            return None
        arr = np.asarray(samples)
        span = arr[-1, 0] - arr[0, 0]
        if span < self.min_span_s - 1e-9:
            return None
        i, j = np.triu_indices(len(arr), k=1)
        dt = arr[j, 0] - arr[i, 0]
        keep = dt >= span / 2 - 1e-9
        dt = dt[keep]
        vx = (arr[j[keep], 1] - arr[i[keep], 1]) / dt
        vy = (arr[j[keep], 2] - arr[i[keep], 2]) / dt
        return float(np.median(vx)), float(np.median(vy))

    def _forget(self, pts: float) -> None:
        stale = [
            tid
            for tid, h in self._tracks.items()
            if not h.samples or h.samples[-1][0] < pts - self.forget_after_s
        ]
        for tid in stale:
            del self._tracks[tid]


def bottom_centers(xyxy: np.ndarray) -> np.ndarray:
    """Where each box touches the road: the middle of its bottom edge, [N, 2] pixels."""
    boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    return np.column_stack(((boxes[:, 0] + boxes[:, 2]) / 2.0, boxes[:, 3]))
