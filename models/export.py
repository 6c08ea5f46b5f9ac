"""Exporting an Ultralytics ``.pt`` checkpoint to ONNX (needs the ``ultralytics`` extra)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Literal

Precision = Literal["fp32", "fp16", "int8"]


def export_onnx(
    weights: Path,
    out_dir: Path,
    imgsz: int = 640,
    batch: int | None = None,
    precision: Precision = "fp32",
    name: str | None = None,
) -> Path:
    """Export ``weights`` to ONNX; ``batch=None`` gives dynamic batch *and* size, an int a fixed shape.

    fp16 needs a GPU at export time in Ultralytics; int8 is onnxruntime's
    dynamic quantization (as in ``yolov8n-coco-int8-b1.onnx``).
    """
    try:
        from ultralytics import YOLO
    except ImportError as exc:  # the extra is optional on purpose: it pulls torch
        raise RuntimeError(
            "model export needs the optional extra: pip install torch==2.14.1 torchvision==0.29.1 "
            "'khupho[ultralytics]'"
        ) from exc
    if not weights.is_file():
        raise FileNotFoundError(f"weights not found: {weights}")
    dynamic = batch is None
    shape = "dyn" if dynamic else f"b{batch}-{imgsz}"
    target = out_dir / (name or f"{weights.stem}-{precision}-{shape}.onnx")
    out_dir.mkdir(parents=True, exist_ok=True)
    # Ultralytics writes its result beside the weights, replacing any file of that name there: work on
    # a copy in a scratch folder so a models folder (often read-only, shared) is never written to.
    with tempfile.TemporaryDirectory(prefix="khupho-export-") as scratch:
        local = Path(scratch) / weights.name
        shutil.copyfile(weights, local)
        produced = Path(
            YOLO(str(local)).export(
                format="onnx",
                imgsz=imgsz,
                dynamic=dynamic,
                batch=batch or 1,
                half=precision == "fp16",
                int8=precision == "int8",
                simplify=True,
                opset=17,
            )
        )
        shutil.move(str(produced), target)
    return target
