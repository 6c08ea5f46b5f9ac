"""YOLO (Ultralytics v8/v11 detection export) on onnxruntime."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

from detectors.base import DetectorError
from detectors.config import ACCELERATOR_MAX_BATCH, CPU_MAX_BATCH, DetectorConfig
from detectors.providers import select_providers
from detectors.yolo_base import YoloDetector

log = logging.getLogger(__name__)

_OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


class YoloOnnxDetector(YoloDetector):
    """A YOLO detection export on onnxruntime (see ``YoloDetector`` for what every runtime shares)."""

    runtime = "onnxruntime"
    precision = "fp32"

    def __init__(self, model: str | Path, config: DetectorConfig | None = None) -> None:
        self.config = config or DetectorConfig()
        self.path = Path(model)
        if not self.path.is_file():
            raise DetectorError(f"model file not found: {self.path}")
        self.providers = select_providers(self.config.providers)
        self.session = self._open_session()
        self._read_signature()
        self._binding = self.session.io_binding() if self.config.io_binding else None
        cpu_only = self.providers[0] == "CPUExecutionProvider"
        self.max_batch = self.config.max_batch or (CPU_MAX_BATCH if cpu_only else ACCELERATOR_MAX_BATCH)
        log.info(
            "loaded %s: %d classes, input %s, batch %s, onnxruntime providers %s",
            self.path.name,
            len(self.names),
            self.imgsz,
            self.fixed_batch or "dynamic",
            self.providers,
        )

    # -- loading --------------------------------------------------------------------------------------

    def _open_session(self) -> ort.InferenceSession:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = _OPT_LEVELS[self.config.graph_optimization]
        opts.intra_op_num_threads = self.config.intra_op_threads
        opts.inter_op_num_threads = self.config.inter_op_threads
        if not self.config.allow_spinning:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        model_path = self.path
        cache = self.config.optimized_model_cache
        if cache is not None:
            # onnxruntime's optimized graph is provider-specific; cache it per provider and size stamp.
            cache.mkdir(parents=True, exist_ok=True)
            level = self.config.graph_optimization
            stamp = f"{self.path.stem}-{self.path.stat().st_size}-{self.providers[0]}-{level}.opt.onnx"
            cached = cache / stamp
            if cached.is_file():
                model_path = cached
                opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            else:
                opts.optimized_model_filepath = str(cached)
        try:
            return ort.InferenceSession(str(model_path), opts, providers=self.providers)
        except Exception as exc:  # onnxruntime raises several types for unreadable files
            raise DetectorError(f"{self.path}: not a loadable ONNX model ({exc})") from exc

    def _read_signature(self) -> None:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            shapes = [i.shape for i in inputs]
            raise DetectorError(f"{self.path}: not a detection model (expects one image input, has {shapes})")
        if inputs[0].shape[1] != 3:
            raise DetectorError(f"{self.path}: input has {inputs[0].shape[1]} channels, expected 3 (RGB)")
        if len(outputs) != 1 or len(outputs[0].shape) != 3:
            shapes = [(o.name, o.shape) for o in outputs]
            raise DetectorError(
                f"{self.path}: unknown output layout {shapes}; "
                "expected one output [batch, 4 + classes, anchors] (Ultralytics v8/v11 detection export)"
            )
        self._input_name = inputs[0].name
        self._output_name = outputs[0].name
        batch = inputs[0].shape[0]
        out_dim = outputs[0].shape[1]
        self._configure(
            self.session.get_modelmeta().custom_metadata_map,
            tuple(inputs[0].shape[2:]),
            batch if isinstance(batch, int) and batch > 0 else None,
            out_dim if isinstance(out_dim, int) else None,
        )
        if inputs[0].type == "tensor(float16)":
            self._input_type = np.float16

    def run_tensor(self, tensor: np.ndarray) -> np.ndarray:
        """Raw network output for a ready input tensor (the session alone: benchmarks' limit)."""
        if self._binding is None:
            return self.session.run(None, {self._input_name: tensor})[0]
        # The input is bound in place (no copy); the output stays in onnxruntime's buffer.
        self._binding.bind_cpu_input(self._input_name, tensor)
        self._binding.bind_output(self._output_name, "cpu")
        self.session.run_with_iobinding(self._binding)
        return self._binding.get_outputs()[0].numpy()
