"""Greedy same-class box matching, the measure behind parity and quality figures."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes ``a`` [N, 4] and ``b`` [M, 4] (xyxy)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


@dataclass
class MatchTally:
    """True/false positives and misses summed over many pictures."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    ious: list[float] = field(default_factory=list)

    def add(self, pred: np.ndarray, ref: np.ndarray, min_iou: float = 0.5) -> None:
        """Match one picture's predictions to its reference; rows are ``[x1, y1, x2, y2, conf, class]``.

        Predictions are taken best-confidence first; each takes the unmatched
        reference box of its class with the highest IoU, if that IoU >= ``min_iou``.
        """
        pred = np.asarray(pred, np.float64).reshape(-1, 6)
        ref = np.asarray(ref, np.float64).reshape(-1, 6)
        iou = iou_matrix(pred[:, :4], ref[:, :4])
        iou[pred[:, 5][:, None] != ref[:, 5][None, :]] = 0.0
        free = np.ones(len(ref), bool)
        matched = 0
        for i in np.argsort(-pred[:, 4], kind="stable"):
            cand = np.where(free, iou[i], 0.0)
            j = int(cand.argmax()) if len(ref) else -1
            if j >= 0 and cand[j] >= min_iou:
                free[j] = False
                matched += 1
                self.ious.append(float(cand[j]))
        self.tp += matched
        self.fp += len(pred) - matched
        self.fn += len(ref) - matched

    @property
    def f1(self) -> float:
        denom = 2 * self.tp + self.fp + self.fn
        return 1.0 if denom == 0 else 2 * self.tp / denom

    @property
    def mean_iou(self) -> float:
        return float(np.mean(self.ious)) if self.ious else 0.0
