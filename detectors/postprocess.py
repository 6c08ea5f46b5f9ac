"""Decode YOLOv8/v11 raw output and run class-aware NMS, vectorized.

Follows Ultralytics' ``non_max_suppression`` step by step (best class per
anchor, confidence filter, class filter, top ``max_nms`` by score, class-offset
greedy NMS, ``max_det``) so that results match the peer's.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MAX_NMS = 30000  # candidates kept before NMS, as Ultralytics


@dataclass(frozen=True, slots=True)
class NmsSettings:
    conf: float = 0.25
    iou: float = 0.7
    classes: np.ndarray | None = None  # int class ids to keep
    max_det: int = 300


def decode_predictions(pred: np.ndarray, settings: NmsSettings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's raw output ``[4 + nc, anchors]`` to ``(xyxy [N,4], conf [N], class_id [N])``.

    Boxes are in network-input pixels, sorted by confidence, best first.
    """
    scores = pred[4:]
    # The best score per anchor first (a row-wise max, cheap), the best class only for the few
    # anchors above the threshold: an argmax over all anchors costs ~6x the max.
    conf = scores.max(axis=0)
    idx = np.flatnonzero(conf > settings.conf)
    class_id = scores[:, idx].argmax(axis=0)
    if settings.classes is not None:
        wanted = np.isin(class_id, settings.classes)
        idx, class_id = idx[wanted], class_id[wanted]
    if idx.size == 0:
        return np.empty((0, 4), np.float32), np.empty(0, np.float32), np.empty(0, np.int64)
    conf = conf[idx]
    if idx.size > MAX_NMS:
        top = np.argsort(-conf, kind="stable")[:MAX_NMS]
        idx, conf, class_id = idx[top], conf[top], class_id[top]
    cx, cy, w, h = pred[:4, idx]
    xyxy = np.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), axis=1)
    # OpenCV's batched NMS offsets boxes per class like Ultralytics' max_wh trick; it takes x, y, w, h.
    # top_k stays 0: OpenCV applies it to candidates *before* NMS, Ultralytics to the survivors.
    xywh = np.concatenate((xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]), axis=1)
    kept = cv2.dnn.NMSBoxesBatched(xywh, conf, class_id, 0.0, settings.iou)
    kept = np.asarray(kept, dtype=np.int64).reshape(-1)[: settings.max_det]
    return xyxy[kept], conf[kept], class_id[kept]
