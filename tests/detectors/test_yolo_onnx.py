from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from detectors import DetectorConfig, DetectorError, YoloOnnxDetector


def tiny_model(path: Path, out_shape: list, names: str | None = None, in_shape: list | None = None) -> Path:
    """A real ONNX graph (global pooling + reshape/expand) with chosen input and output shapes."""
    in_shape = in_shape or ["batch", 3, "h", "w"]
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, in_shape)
    out = helper.make_tensor_value_info("output0", TensorProto.FLOAT, out_shape)
    shape = helper.make_tensor(
        "shape", TensorProto.INT64, [len(out_shape)], [1] + [int(d) for d in out_shape[1:]]
    )
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0, axes=[1, 2, 3]),
        helper.make_node("Expand", ["m", "shape"], ["output0"]),
    ]
    graph = helper.make_graph(nodes, "tiny", [inp], [out], initializer=[shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    if names is not None:
        helper.set_model_props(model, {"names": names, "stride": "32"})
    onnx.save(model, str(path))
    return path


def test_bus_matches_ultralytics_reference(detector: YoloOnnxDetector, shared_dir: Path) -> None:
    ref = json.loads((shared_dir / "reference/ultralytics_yolov8n_640.json").read_text())
    expected = np.array(next(i for i in ref["items"] if i["source"] == "images/bus.jpg")["boxes"])
    det = detector.detect([cv2.imread(str(shared_dir / "images/bus.jpg"))])[0]
    assert det.class_id.tolist() == expected[:, 5].astype(int).tolist()
    np.testing.assert_allclose(det.xyxy, expected[:, :4], atol=0.01)
    np.testing.assert_allclose(det.confidence, expected[:, 4], atol=1e-4)
    assert det.data["class_name"].tolist() == ["person", "person", "bus", "person", "person"]


def test_reads_metadata(detector: YoloOnnxDetector) -> None:
    assert len(detector.names) == 80 and detector.names[0] == "person" and detector.names[2] == "car"
    assert detector.stride == 32 and detector.imgsz == (640, 640)
    assert detector.dynamic_shape and detector.fixed_batch is None


def test_fixed_batch_model_splits_batches(models_dir: Path, shared_dir: Path) -> None:
    det = YoloOnnxDetector(models_dir / "yolov8n-coco-int8-b1.onnx", DetectorConfig(imgsz=320))
    assert det.fixed_batch == 1 and det.imgsz == (640, 640) and not det.dynamic_shape  # fixed size wins
    bus = cv2.imread(str(shared_dir / "images/bus.jpg"))
    zidane = cv2.imread(str(shared_dir / "images/zidane.jpg"))
    together = det.detect([bus, zidane, bus])
    alone = [det.detect([im])[0] for im in (bus, zidane, bus)]
    for a, b in zip(together, alone, strict=True):
        assert a.class_id.tolist() == b.class_id.tolist()
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=0.01)
    assert "bus" in together[0].data["class_name"].tolist()


def test_class_filter_by_name_and_id(fp32_model: Path, shared_dir: Path) -> None:
    bus = cv2.imread(str(shared_dir / "images/bus.jpg"))
    only_bus = YoloOnnxDetector(fp32_model, DetectorConfig(classes=["bus"])).detect([bus])[0]
    assert only_bus.class_id.tolist() == [5]
    persons = YoloOnnxDetector(fp32_model, DetectorConfig(classes=[0])).detect([bus])[0]
    assert set(persons.class_id.tolist()) == {0} and len(persons) == 4
    with pytest.raises(DetectorError, match="unknown class 'unicorn'"):
        YoloOnnxDetector(fp32_model, DetectorConfig(classes=["unicorn"]))


def test_smaller_imgsz_rounds_to_stride(fp32_model: Path) -> None:
    assert YoloOnnxDetector(fp32_model, DetectorConfig(imgsz=300)).imgsz == (320, 320)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DetectorError, match=r"model file not found: .*nope\.onnx"):
        YoloOnnxDetector(tmp_path / "nope.onnx")


def test_not_a_model(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.onnx"
    bogus.write_text("this is not a model")
    with pytest.raises(DetectorError, match=r"notes\.onnx: not a loadable ONNX model"):
        YoloOnnxDetector(bogus)


def test_face_model_is_not_a_detection_model(models_dir: Path) -> None:
    with pytest.raises(DetectorError, match=r"face_detection_yunet\.onnx: unknown output layout"):
        YoloOnnxDetector(models_dir / "face_detection_yunet.onnx")


def test_classifier_layout_rejected(tmp_path: Path) -> None:
    path = tiny_model(tmp_path / "cls.onnx", [1, 1000], names="{0: 'a'}")
    with pytest.raises(DetectorError, match="unknown output layout"):
        YoloOnnxDetector(path)


def test_channel_count_must_match_names(tmp_path: Path) -> None:
    path = tiny_model(tmp_path / "odd.onnx", [1, 10, 100], names="{0: 'a', 1: 'b'}")
    with pytest.raises(DetectorError, match=r"10 channels per anchor, expected 4 \+ 2 classes"):
        YoloOnnxDetector(path)


def test_tiny_dynamic_model_runs_without_names(tmp_path: Path) -> None:
    # No metadata: class names are made up from the output size, and an empty result is fine.
    path = tiny_model(tmp_path / "plain.onnx", [1, 6, 50])
    det = YoloOnnxDetector(path)
    assert det.names == {0: "class0", 1: "class1"}
    out = det.detect([np.zeros((100, 200, 3), np.uint8)])[0]
    assert len(out) == 0


def test_unavailable_provider_is_named(fp32_model: Path) -> None:
    with pytest.raises(ValueError, match="CUDAExecutionProvider not in this onnxruntime build"):
        YoloOnnxDetector(fp32_model, DetectorConfig(providers=["cuda"]))


def test_optimized_model_cache(fp32_model: Path, tmp_path: Path, shared_dir: Path) -> None:
    bus = cv2.imread(str(shared_dir / "images/bus.jpg"))
    first = YoloOnnxDetector(fp32_model, DetectorConfig(optimized_model_cache=tmp_path))
    cached = list(tmp_path.glob("*.opt.onnx"))
    assert len(cached) == 1
    second = YoloOnnxDetector(fp32_model, DetectorConfig(optimized_model_cache=tmp_path))
    a, b = first.detect([bus])[0], second.detect([bus])[0]
    np.testing.assert_allclose(a.xyxy, b.xyxy, atol=0.01)
