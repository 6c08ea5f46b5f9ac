"""Privacy masks: polygons of a camera's picture (windows, doors, yards of homes) blacked out before
anything else sees the frame, so no detector, rule, snapshot or health check ever works on them.

The mask is rasterised once per picture size into a boolean array; applying it is
one vectorised assignment on the frame, in place (the frame is the pipeline's own
and nothing has read it yet).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

Polygon = Sequence[tuple[float, float]]


class PrivacyMask:
    def __init__(self, polygons: Sequence[Polygon]) -> None:
        self.polygons = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in polygons]
        for p in self.polygons:
            if len(p) < 3:
                raise ValueError("a privacy mask polygon needs at least 3 points")
        self._shape: tuple[int, int] | None = None
        self._mask: np.ndarray | None = None

    def __bool__(self) -> bool:
        return bool(self.polygons)

    def mask(self, height: int, width: int) -> np.ndarray:
        """Boolean [H, W]: True where the picture is hidden (cached per size)."""
        if self._shape != (height, width) or self._mask is None:
            canvas = np.zeros((height, width), dtype=np.uint8)
            cv2.fillPoly(canvas, [np.rint(p).astype(np.int32) for p in self.polygons], 1)
            self._mask, self._shape = canvas.astype(bool), (height, width)
        return self._mask

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Black out the masked pixels of ``image`` (H x W x C) in place; returns it."""
        if self.polygons:
            image[self.mask(image.shape[0], image.shape[1])] = 0
        return image
