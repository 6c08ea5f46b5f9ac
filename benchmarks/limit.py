"""The raw-inference limit: onnxruntime alone on ready input tensors, per batch size.

No decode, no letterbox, no NMS, no tracking: the session of the detector
(same model, same options) runs on a tensor made once. Its images/s at the
best batch size is the ceiling for any pipeline that analyses every frame.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import numpy as np

from detectors import YoloDetector


def images_per_second(
    detector: YoloDetector, shape: tuple[int, int], batch: int, seconds: float, min_runs: int = 3
) -> float:
    """Median images/s of ``run_tensor`` on a [batch, 3, H, W] tensor, after one warm-up run."""
    rng = np.random.default_rng(0)
    tensor = rng.random((batch, 3, *shape), dtype=np.float32)
    detector.run_tensor(tensor)
    times: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < min_runs:
        t0 = time.perf_counter()
        detector.run_tensor(tensor)
        times.append(time.perf_counter() - t0)
    return batch / statistics.median(times)


def sweep(
    detector: YoloDetector, shape: tuple[int, int], batches: Sequence[int], seconds: float
) -> dict[int, float]:
    """images/s for each batch size."""
    return {b: images_per_second(detector, shape, b, seconds) for b in batches}
