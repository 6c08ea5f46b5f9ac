"""YOLO (Ultralytics v8/v11 detection export) on OpenVINO, read straight from the ONNX file.

OpenVINO's CPU plugin uses the matrix units (AMX) of recent Xeons for bf16 and
int8, which onnxruntime's CPU provider does not for this model: on the shared
machine bf16 runs about 3x onnxruntime fp32 (README, ``khupho bench``). The
model is compiled once per letterboxed size (height, width; the batch ranges
over 1..max_batch): a camera keeps its letterbox, so a process sees a handful
of sizes, and static sizes let the plugin pick its fastest kernels. Compiled
models are kept in OpenVINO's model cache on disk (``CACHE_DIR``), so a
restart imports them instead of compiling again.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from detectors.base import DetectorError
from detectors.config import CPU_MAX_BATCH, DetectorConfig
from detectors.yolo_base import YoloDetector

log = logging.getLogger(__name__)

# OpenVINO's inference precision hint for each precision (an int8 IR keeps its float parts in bf16).
_PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "bf16"}


def default_compiled_cache() -> Path:
    from models.resolve import cache_dir

    return cache_dir().parent / "openvino"


class YoloOpenVinoDetector(YoloDetector):
    """A YOLO detection export on OpenVINO (see ``YoloDetector`` for what every runtime shares).

    ``model`` is the ONNX file, or an OpenVINO IR (``.xml``) made from one (its metadata kept).
    ``precision`` is ``fp32`` or ``bf16`` (OpenVINO's ``INFERENCE_PRECISION_HINT``: weights and
    activations in bf16, accumulations in fp32), or ``int8`` for an IR already quantized
    (``benchmarks.int8_openvino``; its float parts in bf16). int8 is not offered in the config:
    measured at parity F1 0.91, below the 0.97 it would have to keep (README).
    """

    runtime = "openvino"

    def __init__(
        self, model: str | Path, config: DetectorConfig | None = None, precision: str = "fp32"
    ) -> None:
        import openvino as ov

        self.config = config or DetectorConfig()
        self.path = Path(model)
        if precision not in _PRECISION_HINTS:
            raise DetectorError(
                f"unknown precision {precision!r} (expected one of {', '.join(_PRECISION_HINTS)})"
            )
        self.precision = precision
        if not self.path.is_file():
            raise DetectorError(f"model file not found: {self.path}")
        self._core = ov.Core()
        try:
            self._model = self._core.read_model(str(self.path))
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses of several kinds
            raise DetectorError(f"{self.path}: not a loadable ONNX model ({exc})") from exc
        self._read_signature()
        self.max_batch = self.config.max_batch or CPU_MAX_BATCH
        self.cache_dir = self.config.compiled_model_cache or default_compiled_cache()
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._properties: dict[str, object] = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": _PRECISION_HINTS[precision],
            "CACHE_DIR": str(self.cache_dir),
        }
        if self.config.intra_op_threads:
            self._properties["INFERENCE_NUM_THREADS"] = self.config.intra_op_threads
        self._requests: dict[tuple[int, int], tuple[object, int]] = {}  # (h, w): (request, most batch)
        self.compile_seconds = 0.0
        log.info(
            "loaded %s: %d classes, input %s, batch %s, OpenVINO %s on %s",
            self.path.name,
            len(self.names),
            self.imgsz,
            self.fixed_batch or "dynamic",
            precision,
            self._core.get_property("CPU", "FULL_DEVICE_NAME"),
        )

    def _read_signature(self) -> None:
        inputs, outputs = self._model.inputs, self._model.outputs
        if len(inputs) != 1 or inputs[0].get_partial_shape().rank.get_length() != 4:
            shapes = [str(i.get_partial_shape()) for i in inputs]
            raise DetectorError(f"{self.path}: not a detection model (expects one image input, has {shapes})")
        in_shape = inputs[0].get_partial_shape()
        if in_shape[1].is_static and in_shape[1].get_length() != 3:
            raise DetectorError(f"{self.path}: input has {in_shape[1]} channels, expected 3 (RGB)")
        if len(outputs) != 1 or outputs[0].get_partial_shape().rank.get_length() != 3:
            shapes = [str(o.get_partial_shape()) for o in outputs]
            raise DetectorError(
                f"{self.path}: unknown output layout {shapes}; "
                "expected one output [batch, 4 + classes, anchors] (Ultralytics v8/v11 detection export)"
            )

        def static(dim: object) -> int | None:
            return dim.get_length() if dim.is_static else None  # type: ignore[attr-defined]

        out_dim = static(outputs[0].get_partial_shape()[1])
        self._configure(
            _metadata(self._model),
            (static(in_shape[2]), static(in_shape[3])),
            static(in_shape[0]),
            out_dim,
        )

    def _request_for(self, shape: tuple[int, ...]) -> object:
        """The infer request of the model compiled for one letterboxed size (compiled on first use).

        Height and width are static, the batch ranges over 1..``max_batch``: one compiled model
        per camera geometry serves every batch size. Measured: a compiled model costs 55-75 MB
        here (weights repacked for the size, activations), a model per (batch, height, width)
        cost one more for batch 2 of every size; speed within noise of batch-static models.
        """
        n, _, h, w = shape
        request, bound = self._requests.get((h, w), (None, 0))
        if request is None or n > bound:
            import openvino as ov

            t0 = time.perf_counter()
            bound = max(self.max_batch, n)  # a larger batch (benchmarks' sweeps) recompiles
            model = self._model.clone()
            batch = self.fixed_batch or ov.Dimension(1, bound)
            model.reshape({model.inputs[0]: ov.PartialShape([batch, 3, h, w])})
            compiled = self._core.compile_model(model, "CPU", self._properties)
            request = compiled.create_infer_request()
            self._requests[(h, w)] = (request, bound)
            seconds = time.perf_counter() - t0
            self.compile_seconds += seconds
            log.info(
                "OpenVINO %s model for %dx%d, batch up to %d, ready in %.2f s",
                self.precision,
                w,
                h,
                bound,
                seconds,
            )
        return request

    def run_tensor(self, tensor: np.ndarray) -> np.ndarray:
        request = self._request_for(tensor.shape)
        request.infer({0: tensor}, share_inputs=True)  # type: ignore[attr-defined]
        return request.get_output_tensor(0).data  # type: ignore[attr-defined]

    def close(self) -> None:
        self._requests.clear()


def _metadata(model: object) -> dict[str, str]:
    """The ONNX file's metadata (Ultralytics' names, stride, task...), which OpenVINO keeps under
    the model's ``framework`` runtime info."""
    info = model.get_rt_info()  # type: ignore[attr-defined]
    if "framework" not in info:
        return {}
    framework = info["framework"]
    if hasattr(framework, "astype"):
        framework = framework.astype(dict)
    return {str(k): v.astype(str) if hasattr(v, "astype") else str(v) for k, v in framework.items()}
