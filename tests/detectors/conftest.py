from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from detectors import DetectorConfig, YoloOnnxDetector


@pytest.fixture(scope="session")
def fp32_model(models_dir: Path) -> Path:
    return models_dir / "yolov8n-coco.onnx"


@pytest.fixture(scope="session")
def detector(fp32_model: Path) -> YoloOnnxDetector:
    return YoloOnnxDetector(fp32_model, DetectorConfig(intra_op_threads=2))


def first_frames(path: Path, count: int, step: int = 1) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % step == 0:
                out.append(frame.to_ndarray(format="bgr24"))
            if len(out) == count:
                break
    return out
