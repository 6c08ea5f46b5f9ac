"""Face redaction of snapshots: OpenCV's YuNet finds faces; the head region of every person box covers
the faces too small for it (CCTV faces are often a dozen pixels).

Both kinds of region are blurred in one pass: the whole picture is pixelated once
(shrink, enlarge) and the regions are copied from it, so the cost does not grow
with the size of the regions.
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

FACE_MODEL = "face_detection_yunet.onnx"


def head_regions(person_boxes: np.ndarray, *, top_fraction: float = 0.28, widen: float = 0.1) -> np.ndarray:
    """xyxy [N, 4] of the top ``top_fraction`` of each person box, ``widen`` of its width added each side."""
    boxes = np.asarray(person_boxes, dtype=np.float32).reshape(-1, 4)
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return np.stack(
        [boxes[:, 0] - widen * w, boxes[:, 1], boxes[:, 2] + widen * w, boxes[:, 1] + top_fraction * h],
        axis=1,
    )


def blur_regions(image: np.ndarray, regions: np.ndarray, *, block: int = 12) -> np.ndarray:
    """A copy of ``image`` with the xyxy ``regions`` pixelated in blocks of about ``block`` pixels."""
    out = image.copy()
    if len(regions) == 0:
        return out
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, w // block), max(1, h // block)), interpolation=cv2.INTER_AREA)
    coarse = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    r = np.rint(np.asarray(regions, dtype=np.float64).reshape(-1, 4))
    r = np.clip(r, 0, [w, h, w, h]).astype(np.int64)
    for x1, y1, x2, y2 in r[(r[:, 2] > r[:, 0]) & (r[:, 3] > r[:, 1])]:
        out[y1:y2, x1:x2] = coarse[y1:y2, x1:x2]
    return out


class FaceRedactor:
    """YuNet faces plus person heads, blurred. One detector per instance, guarded by a lock."""

    def __init__(self, model: str | Path, *, score_threshold: float = 0.5, margin: float = 0.25) -> None:
        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"face model {path.name} not found")
        self._detector = cv2.FaceDetectorYN.create(str(path), "", (320, 320), score_threshold, 0.3, 5000)
        self.margin = margin
        self._lock = threading.Lock()

    def faces(self, image: np.ndarray) -> np.ndarray:
        """xyxy [N, 4] of the faces YuNet finds, each grown by ``margin`` of its size."""
        h, w = image.shape[:2]
        with self._lock:
            self._detector.setInputSize((w, h))
            _, found = self._detector.detect(image)
        if found is None or len(found) == 0:
            return np.zeros((0, 4), dtype=np.float32)
        x, y, fw, fh = (found[:, i] for i in range(4))
        m = self.margin
        return np.stack([x - m * fw, y - m * fh, x + (1 + m) * fw, y + (1 + m) * fh], axis=1).astype(
            np.float32
        )

    def redact(self, image: np.ndarray, person_boxes: np.ndarray) -> np.ndarray:
        return blur_regions(image, np.vstack([self.faces(image), head_regions(person_boxes)]))


def find_face_model(search: list[Path]) -> Path | None:
    for folder in search:
        candidate = folder / FACE_MODEL
        if candidate.is_file():
            return candidate
    return None
