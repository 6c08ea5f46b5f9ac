"""The OpenVINO plugin: same pictures in, same Detections out as onnxruntime, on the real model."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("openvino")

from detectors import DetectorConfig, DetectorError, YoloOnnxDetector
from detectors.yolo_openvino import YoloOpenVinoDetector
from tests.detectors.conftest import first_frames
from tests.detectors.test_yolo_onnx import tiny_model


@pytest.fixture(scope="module")
def ov_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("openvino-cache")


def test_fp32_matches_ultralytics_reference(fp32_model: Path, shared_dir: Path, ov_cache: Path) -> None:
    ref = json.loads((shared_dir / "reference/ultralytics_yolov8n_640.json").read_text())
    expected = np.array(next(i for i in ref["items"] if i["source"] == "images/bus.jpg")["boxes"])
    detector = YoloOpenVinoDetector(fp32_model, DetectorConfig(compiled_model_cache=ov_cache), "fp32")
    assert (detector.runtime, detector.precision) == ("openvino", "fp32")
    det = detector.detect([cv2.imread(str(shared_dir / "images/bus.jpg"))])[0]
    assert det.class_id.tolist() == expected[:, 5].astype(int).tolist()
    np.testing.assert_allclose(det.xyxy, expected[:, :4], atol=0.05)
    np.testing.assert_allclose(det.confidence, expected[:, 4], atol=1e-3)
    assert det.data["class_name"].tolist() == ["person", "person", "bus", "person", "person"]


def test_reads_metadata_like_onnxruntime(fp32_model: Path, ov_cache: Path) -> None:
    ov = YoloOpenVinoDetector(fp32_model, DetectorConfig(compiled_model_cache=ov_cache))
    ort = YoloOnnxDetector(fp32_model)
    assert ov.names == ort.names and ov.stride == ort.stride == 32
    assert ov.imgsz == ort.imgsz == (640, 640) and ov.dynamic_shape and ov.fixed_batch is None


def test_mixed_sizes_in_one_call_match_one_by_one(fp32_model: Path, shared_dir: Path, ov_cache: Path) -> None:
    # Three pictures, two letterbox shapes, max_batch 2: groups and splits, and every result lands
    # at its own picture.
    footage = shared_dir / "footage"
    pictures = first_frames(footage / "traffic_intersection_cctv_640x480_h264.mp4", 2, step=15)
    pictures += first_frames(footage / "pedestrians_plaza_overhead_1280x720_h264.mp4", 1)
    detector = YoloOpenVinoDetector(fp32_model, DetectorConfig(compiled_model_cache=ov_cache), "bf16")
    together = detector.detect(pictures)
    alone = [detector.detect([p])[0] for p in pictures]
    assert len({(p.shape[0], p.shape[1]) for p in pictures}) == 2
    for a, b in zip(together, alone, strict=True):
        assert len(a) == len(b) > 0
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1.0)


def test_compiled_models_are_cached_on_disk(fp32_model: Path, shared_dir: Path, tmp_path: Path) -> None:
    bus = cv2.imread(str(shared_dir / "images/bus.jpg"))
    first = YoloOpenVinoDetector(fp32_model, DetectorConfig(compiled_model_cache=tmp_path), "bf16")
    a = first.detect([bus])[0]
    blobs = sorted(tmp_path.rglob("*.blob"))
    assert blobs, list(tmp_path.rglob("*"))
    second = YoloOpenVinoDetector(fp32_model, DetectorConfig(compiled_model_cache=tmp_path), "bf16")
    b = second.detect([bus])[0]
    # The second process imports the compiled model instead of compiling: no new cache entry.
    assert sorted(tmp_path.rglob("*.blob")) == blobs
    np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)


def test_class_filter_and_threshold(fp32_model: Path, shared_dir: Path, ov_cache: Path) -> None:
    cfg = DetectorConfig(compiled_model_cache=ov_cache, classes=["bus"], conf=0.5)
    det = YoloOpenVinoDetector(fp32_model, cfg).detect([cv2.imread(str(shared_dir / "images/bus.jpg"))])[0]
    assert det.data["class_name"].tolist() == ["bus"]


def test_missing_and_bad_files(tmp_path: Path) -> None:
    with pytest.raises(DetectorError, match="model file not found"):
        YoloOpenVinoDetector(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(DetectorError, match="not a loadable ONNX model"):
        YoloOpenVinoDetector(bad, DetectorConfig(compiled_model_cache=tmp_path))


def test_layouts_checked_like_onnxruntime(tmp_path: Path) -> None:
    cls = tiny_model(tmp_path / "cls.onnx", ["batch", 1000])
    with pytest.raises(DetectorError, match="unknown output layout"):
        YoloOpenVinoDetector(cls, DetectorConfig(compiled_model_cache=tmp_path))
    wrong = tiny_model(tmp_path / "wrong.onnx", ["batch", 10, 8400], names="{0: 'a', 1: 'b'}")
    with pytest.raises(DetectorError, match="expected 4 \\+ 2 classes"):
        YoloOpenVinoDetector(wrong, DetectorConfig(compiled_model_cache=tmp_path))


def test_unknown_precision(fp32_model: Path) -> None:
    with pytest.raises(DetectorError, match="unknown precision 'fp8'"):
        YoloOpenVinoDetector(fp32_model, precision="fp8")


def test_one_compiled_model_per_size_serves_every_batch(fp32_model: Path, ov_cache: Path) -> None:
    detector = YoloOpenVinoDetector(fp32_model, DetectorConfig(compiled_model_cache=ov_cache), "bf16")
    rng = np.random.default_rng(0)
    for batch in (1, 2, 1):
        out = detector.run_tensor(rng.random((batch, 3, 384, 640), dtype=np.float32))
        assert out.shape == (batch, 84, 5040)
    assert list(detector._requests) == [(384, 640)]
    # A batch above max_batch (a benchmark's sweep) recompiles that size for it, and keeps working.
    assert detector.run_tensor(rng.random((4, 3, 384, 640), dtype=np.float32)).shape[0] == 4
    assert detector.run_tensor(rng.random((2, 3, 480, 640), dtype=np.float32)).shape[0] == 2
    assert set(detector._requests) == {(384, 640), (480, 640)}
