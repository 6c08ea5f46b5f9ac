"""Image measures of camera health on a small grey picture: vectorised, a few milliseconds per sample."""

from __future__ import annotations

import cv2
import numpy as np

# Limited ("tv") range luma 16..235 stretched to 0..255, so thresholds mean the same for a Y plane.
_LIMITED_TO_FULL = np.clip((np.arange(256, dtype=np.float32) - 16.0) * (255.0 / 219.0), 0, 255).round()
LIMITED_TO_FULL_LUT = _LIMITED_TO_FULL.astype(np.uint8)


def to_work(image: np.ndarray, width: int, lut: np.ndarray | None = None) -> np.ndarray:
    """The grey working picture: ``width`` wide (never upscaled), aspect kept, uint8.

    Accepts BGR (H x W x 3) or a grey/luma plane (H x W, e.g. the Y plane of a
    decoded frame, row padding already sliced off). ``lut`` maps grey levels
    (limited-range luma to full range).
    """
    if image.ndim == 3:
        if image.shape[2] == 3:
            grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        elif image.shape[2] == 1:
            grey = image[:, :, 0]
        else:
            raise ValueError(f"expected BGR or a single plane, got shape {image.shape}")
    elif image.ndim == 2:
        grey = image
    else:
        raise ValueError(f"expected BGR or a single plane, got shape {image.shape}")
    if grey.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {grey.dtype}")
    if grey.strides[-1] != 1:
        grey = np.ascontiguousarray(grey)
    h, w = grey.shape
    if w > width:
        # INTER_AREA averages whole source pixels: the downscale itself removes most encoder noise.
        grey = cv2.resize(grey, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    elif lut is None:
        grey = grey.copy()  # the caller may reuse its buffer; the monitor keeps this picture
    if lut is not None:
        grey = cv2.LUT(grey, lut)
    return grey


def block_std(work: np.ndarray, block_px: int) -> np.ndarray:
    """Grey-level standard deviation of each (about) ``block_px`` square block, via two area resizes."""
    h, w = work.shape
    bw, bh = max(1, round(w / block_px)), max(1, round(h / block_px))
    f = work.astype(np.float32)
    m = cv2.resize(f, (bw, bh), interpolation=cv2.INTER_AREA)
    m2 = cv2.resize(f * f, (bw, bh), interpolation=cv2.INTER_AREA)
    return np.sqrt(np.maximum(m2 - m * m, 0.0))


def detail(work: np.ndarray, luma_std: float) -> tuple[float, float]:
    """Fine detail: (variance of the Laplacian, the same divided by the picture's grey variance).

    The first falls with defocus and with darkness; the second with defocus but
    not with a global change of contrast (dusk, exposure), and it falls instead
    when large plain objects fill a plain scene. A picture is blurred only when
    both fell, so callers compare each with its own baseline and take the larger
    ratio.
    """
    lap = cv2.Laplacian(work, cv2.CV_32F, ksize=1)
    _, sd = cv2.meanStdDev(lap)
    lap_var = float(sd[0, 0]) ** 2
    return lap_var, lap_var / (luma_std * luma_std + 1.0)


def changed_fraction(a: np.ndarray, b: np.ndarray, delta: int) -> float:
    """Fraction of pixels whose grey levels differ by at least ``delta``."""
    diff = cv2.absdiff(a, b)
    _, mask = cv2.threshold(diff, delta - 1, 255, cv2.THRESH_BINARY)
    return cv2.countNonZero(mask) / mask.size


def medians(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel median of N pictures (N x H x W), and for each picture the median of the others.

    One sort serves all N + 1 medians (np.median along the first axis is ~10x slower).
    """
    n, h, w = stack.shape
    flat = np.ascontiguousarray(stack.reshape(n, -1).T)  # pixels x samples
    order = np.argsort(flat, axis=1, kind="stable")
    srt = np.take_along_axis(flat, order, axis=1)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(n)[None, :], axis=1)

    def middle(values: np.ndarray, count: int, skip: np.ndarray | None) -> np.ndarray:
        lo, hi = (count - 1) // 2, count // 2
        picks = []
        for k in (lo, hi):
            idx = np.full((values.shape[0], 1), k)
            if skip is not None:
                idx = idx + (idx >= skip[:, None])  # step over the left-out sample
            picks.append(np.take_along_axis(values, idx, axis=1)[:, 0])
        return (picks[0] + picks[1]) / 2

    whole = middle(srt, n, None).reshape(h, w)
    others = np.stack([middle(srt, n - 1, rank[:, i]).reshape(h, w) for i in range(n)]) if n > 1 else stack
    return whole, others


class PhaseCorrelator:
    """Phase correlation of pictures of one size against a stored reference.

    Returns the shift of a picture relative to the reference (sub-pixel, from a
    3x3 centroid around the peak) and the peak height: near 1 for the same view
    shifted, near 0 for an unrelated one. Written in numpy because OpenCV 5.0's
    ``cv2.phaseCorrelate`` multiplies its inputs by the window in place.
    """

    def __init__(self, shape: tuple[int, int]) -> None:
        self.shape = shape
        h, w = shape
        # A Hann window stops the picture borders (and overlays in the corners) dominating.
        self._window = cv2.createHanningWindow((w, h), cv2.CV_32F)
        self._ref_conj: np.ndarray | None = None

    def _spectrum(self, img: np.ndarray) -> np.ndarray:
        x = img.astype(np.float32, copy=False)
        x = (x - x.mean()) * self._window
        return np.fft.rfft2(x)

    def set_reference(self, img: np.ndarray) -> None:
        self._ref_conj = np.conj(self._spectrum(img))

    def match(self, img: np.ndarray) -> tuple[float, float, float]:
        """(dx, dy, peak) of ``img`` against the reference; dx > 0 means the content moved right."""
        if self._ref_conj is None:
            raise RuntimeError("no reference set")
        cross = self._spectrum(img) * self._ref_conj
        cross /= np.abs(cross) + 1e-9
        corr = np.fft.irfft2(cross, s=self.shape)
        h, w = self.shape
        py, px = divmod(int(np.argmax(corr)), w)
        peak = float(corr[py, px])
        rows = np.take(corr, [py - 1, py, py + 1], axis=0, mode="wrap")
        near = np.maximum(np.take(rows, [px - 1, px, px + 1], axis=1, mode="wrap"), 0.0)
        total = float(near.sum()) or 1.0
        offsets = np.array([-1.0, 0.0, 1.0])
        dy = py + float(near.sum(axis=1) @ offsets) / total
        dx = px + float(near.sum(axis=0) @ offsets) / total
        # Peaks past half the size are negative shifts (the correlation is circular).
        if dy >= h / 2:
            dy -= h
        if dx >= w / 2:
            dx -= w
        return dx, dy, peak
