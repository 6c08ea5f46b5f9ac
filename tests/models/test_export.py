"""``khupho models export`` with the real Ultralytics exporter (the optional extra, which CI installs)."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import pytest
from typer.testing import CliRunner

from api.cli import app
from detectors import YoloOnnxDetector


@pytest.fixture
def weights(models_dir: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A private copy of the checkpoint; Ultralytics writes exports beside the weights it is given,
    and khupho must never let it: the folder must be unchanged afterwards."""
    folder = tmp_path / "models"
    folder.mkdir()
    pt = folder / "yolov8n-coco.pt"
    shutil.copyfile(models_dir / "yolov8n-coco.pt", pt)
    before = sorted(p.name for p in folder.iterdir())
    yield pt
    assert sorted(p.name for p in folder.iterdir()) == before


@pytest.mark.slow
def test_export_fixed_batch_and_size(weights: Path, shared_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "models",
            "export",
            "--weights",
            str(weights),
            "--out",
            str(tmp_path / "out"),
            "--imgsz",
            "320",
            "--batch",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    path = Path(result.output.strip().splitlines()[-1])
    assert path == tmp_path / "out" / "yolov8n-coco-fp32-b2-320.onnx" and path.is_file()
    det = YoloOnnxDetector(path)
    assert det.fixed_batch == 2 and det.imgsz == (320, 320) and not det.dynamic_shape
    bus = cv2.imread(str(shared_dir / "images/bus.jpg"))
    out = det.detect([bus, bus, bus])  # three pictures on a batch-2 model: padded second batch
    assert all("bus" in d.data["class_name"].tolist() for d in out)


@pytest.mark.slow
def test_export_dynamic(weights: Path, models_dir: Path, shared_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "models",
            "export",
            "--weights",
            str(weights),
            "--out",
            str(tmp_path / "out"),
            "--imgsz",
            "640",
            "--name",
            "dyn.onnx",
        ],
    )
    assert result.exit_code == 0, result.output
    det = YoloOnnxDetector(tmp_path / "out" / "dyn.onnx")
    assert det.dynamic_shape and det.fixed_batch is None and det.names[5] == "bus"
    shared = YoloOnnxDetector(models_dir / "yolov8n-coco.onnx")
    bus = cv2.imread(str(shared_dir / "images/bus.jpg"))
    a, b = det.detect([bus])[0], shared.detect([bus])[0]
    assert a.class_id.tolist() == b.class_id.tolist()  # same weights, same detections


def test_export_rejects_unknown_precision(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["models", "export", "--weights", "x.pt", "--precision", "int4"])
    assert result.exit_code == 2 and "--precision must be fp32, fp16 or int8" in result.output


def test_export_missing_weights(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["models", "export", "--weights", str(tmp_path / "none.pt"), "--out", str(tmp_path)]
    )
    assert result.exit_code == 2 and "weights not found" in result.output
