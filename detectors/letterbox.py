"""Ultralytics-compatible letterbox: shape arithmetic and preprocessing into preallocated buffers.

The arithmetic copies Ultralytics' ``LetterBox`` and ``scale_boxes`` (including
their ``round(x -/+ 0.1)`` padding split and banker's rounding) because parity
with the peer depends on the exact pixel grid the network sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

PAD_VALUE = 114
_INV_255 = np.float32(1.0 / 255.0)


@dataclass(frozen=True, slots=True)
class Letterbox:
    """Where a source picture lands inside the network input."""

    src_h: int
    src_w: int
    in_h: int  # network input height
    in_w: int
    new_h: int  # resized picture, before padding
    new_w: int
    top: int
    left: int

    @property
    def input_shape(self) -> tuple[int, int]:
        return self.in_h, self.in_w

    @classmethod
    def fit(cls, src_h: int, src_w: int, imgsz: tuple[int, int], stride: int, minimal: bool) -> Letterbox:
        """Letterbox a ``src_h x src_w`` picture into ``imgsz`` (h, w).

        ``minimal`` pads only up to the next stride multiple (Ultralytics'
        ``auto=True``, for dynamic-shape models); otherwise the input is exactly
        ``imgsz`` (fixed-shape models).
        """
        if src_h <= 0 or src_w <= 0:
            raise ValueError(f"picture has no pixels: {src_w}x{src_h}")
        r = min(imgsz[0] / src_h, imgsz[1] / src_w)
        new_w, new_h = round(src_w * r), round(src_h * r)
        dw, dh = imgsz[1] - new_w, imgsz[0] - new_h
        if minimal:
            dw, dh = dw % stride, dh % stride
        half_w, half_h = dw / 2, dh / 2
        top, bottom = round(half_h - 0.1), round(half_h + 0.1)
        left, right = round(half_w - 0.1), round(half_w + 0.1)
        return cls(src_h, src_w, new_h + top + bottom, new_w + left + right, new_h, new_w, top, left)

    def boxes_to_source(self, xyxy: np.ndarray) -> np.ndarray:
        """Map boxes from network-input pixels back to source pixels, in place (Ultralytics' scale_boxes)."""
        gain = min(self.in_h / self.src_h, self.in_w / self.src_w)
        pad_x = round((self.in_w - round(self.src_w * gain)) / 2 - 0.1)
        pad_y = round((self.in_h - round(self.src_h * gain)) / 2 - 0.1)
        xyxy -= np.array([pad_x, pad_y, pad_x, pad_y], dtype=xyxy.dtype)
        xyxy /= gain
        np.clip(xyxy[:, 0::2], 0, self.src_w, out=xyxy[:, 0::2])
        np.clip(xyxy[:, 1::2], 0, self.src_h, out=xyxy[:, 1::2])
        return xyxy


class InputBuffers:
    """Reusable uint8 canvases and float32 input tensors, one pair per input shape and batch size.

    Pictures are resized straight into the padded canvas (no intermediate copy),
    then one numpy pass does BGR->RGB, HWC->CHW and the 1/255 scaling into the
    tensor the session reads.
    """

    def __init__(self) -> None:
        self._canvas: dict[tuple[int, int, int], np.ndarray] = {}
        self._tensor: dict[tuple[int, int, int], np.ndarray] = {}

    def fill(self, images: Sequence[np.ndarray], boxes: Sequence[Letterbox], batch: int) -> np.ndarray:
        """Letterbox ``images`` (all with the same input shape) into a [batch, 3, H, W] tensor.

        Slots past ``len(images)`` (padding for fixed-batch models) keep stale pixels; their
        outputs are discarded by the caller.
        """
        in_h, in_w = boxes[0].input_shape
        key = (batch, in_h, in_w)
        canvas = self._canvas.get(key)
        if canvas is None:
            canvas = self._canvas[key] = np.full((batch, in_h, in_w, 3), PAD_VALUE, np.uint8)
            self._tensor[key] = np.empty((batch, 3, in_h, in_w), np.float32)
        tensor = self._tensor[key]
        for slot, (image, lb) in enumerate(zip(images, boxes, strict=True)):
            _draw_into(canvas[slot], image, lb)
        np.multiply(canvas[..., ::-1].transpose(0, 3, 1, 2), _INV_255, out=tensor)
        return tensor


def _draw_into(canvas: np.ndarray, image: np.ndarray, lb: Letterbox) -> None:
    """Resize ``image`` into its place on a canvas and grey the borders around it."""
    top, left, h, w = lb.top, lb.left, lb.new_h, lb.new_w
    region = canvas[top : top + h, left : left + w]
    if (h, w) == image.shape[:2]:
        region[...] = image
    else:
        cv2.resize(image, (w, h), dst=region, interpolation=cv2.INTER_LINEAR)
    # Borders may hold pixels of a previous picture with another geometry.
    canvas[:top] = PAD_VALUE
    canvas[top + h :] = PAD_VALUE
    canvas[top : top + h, :left] = PAD_VALUE
    canvas[top : top + h, left + w :] = PAD_VALUE
