"""YOLO (Ultralytics v8/v11 detection export) on onnxruntime."""

from __future__ import annotations

import ast
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
import supervision as sv

from detectors.base import Detector, DetectorError
from detectors.config import ACCELERATOR_MAX_BATCH, CPU_MAX_BATCH, DetectorConfig
from detectors.letterbox import InputBuffers, Letterbox
from detectors.postprocess import NmsSettings, decode_predictions
from detectors.providers import select_providers

log = logging.getLogger(__name__)

# On CPU a batch is no faster per picture than one picture (docs/notes/bench.md) but holds more
# activation memory, so batches are split to this size unless the config says otherwise.

_OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


class YoloOnnxDetector(Detector):
    """Any Ultralytics-exported detection model with output ``[batch, 4 + classes, anchors]``.

    Dynamic-shape models get Ultralytics' minimal-padding letterbox (the input
    follows each picture's aspect ratio, padded to stride multiples), so
    detections match Ultralytics'; fixed-shape models get the square letterbox
    they were exported for. Pictures of one call are grouped by input shape and
    each group runs as one batch (split to the model's fixed batch if it has one).
    Not thread-safe: one caller at a time (the batcher is that caller).
    """

    def __init__(self, model: str | Path, config: DetectorConfig | None = None) -> None:
        self.config = config or DetectorConfig()
        self.path = Path(model)
        if not self.path.is_file():
            raise DetectorError(f"model file not found: {self.path}")
        self.providers = select_providers(self.config.providers)
        self.session = self._open_session()
        self._read_signature()
        self.names = self._read_names()
        self._name_table = np.array(
            [self.names.get(i, str(i)) for i in range(max(self.names) + 1)], dtype=object
        )
        self.stride = int(self._meta.get("stride", 32))
        self.imgsz = self._input_size()
        self._nms = NmsSettings(
            conf=self.config.conf,
            iou=self.config.iou,
            classes=self._class_filter(self.config.classes),
            max_det=self.config.max_det,
        )
        self._buffers = InputBuffers()
        self._binding = self.session.io_binding() if self.config.io_binding else None
        cpu_only = self.providers[0] == "CPUExecutionProvider"
        self.max_batch: int = self.config.max_batch or (CPU_MAX_BATCH if cpu_only else ACCELERATOR_MAX_BATCH)
        self._boxes_cache: dict[tuple[int, int], Letterbox] = {}
        # Cumulative seconds per stage, for benchmarks' breakdowns (a few perf_counter calls per batch).
        self.stage_seconds = {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}
        log.info(
            "loaded %s: %d classes, input %s, batch %s, providers %s",
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
        self._input_type = np.float16 if inputs[0].type == "tensor(float16)" else np.float32
        batch = inputs[0].shape[0]
        self.fixed_batch: int | None = batch if isinstance(batch, int) and batch > 0 else None
        self._meta = self.session.get_modelmeta().custom_metadata_map
        out_dim = outputs[0].shape[1]
        self._out_channels: int | None = out_dim if isinstance(out_dim, int) else None
        if self._meta.get("end2end", "False") == "True":
            raise DetectorError(
                f"{self.path}: end-to-end (NMS-free, [batch, max_det, 6]) export; "
                "export without end2end/nms for output [batch, 4 + classes, anchors]"
            )
        if self._meta.get("task", "detect") != "detect":
            raise DetectorError(f"{self.path}: task is {self._meta['task']!r}, not 'detect'")

    def _read_names(self) -> dict[int, str]:
        raw = self._meta.get("names")
        if raw:
            try:
                names = {int(k): str(v) for k, v in ast.literal_eval(raw).items()}
            except (ValueError, SyntaxError, AttributeError) as exc:
                raise DetectorError(f"{self.path}: unreadable class names in metadata ({exc})") from exc
        elif self._out_channels is not None:
            names = {i: f"class{i}" for i in range(self._out_channels - 4)}
        else:
            raise DetectorError(f"{self.path}: no class names in metadata and no fixed output size")
        if self._out_channels is not None and self._out_channels != 4 + len(names):
            raise DetectorError(
                f"{self.path}: unknown output layout: {self._out_channels} channels per anchor, "
                f"expected 4 + {len(names)} classes"
            )
        return names

    def _input_size(self) -> tuple[int, int]:
        h, w = self.session.get_inputs()[0].shape[2:]
        self.dynamic_shape = not (isinstance(h, int) and isinstance(w, int))
        if not self.dynamic_shape:
            if (h, w) != (self.config.imgsz, self.config.imgsz):
                log.info(
                    "%s has a fixed %dx%d input; imgsz %d ignored", self.path.name, w, h, self.config.imgsz
                )
            return h, w
        s = self.stride
        size = max(s, (self.config.imgsz + s - 1) // s * s)  # Ultralytics' check_imgsz rounds up
        return size, size

    def _class_filter(self, classes: list[int | str] | None) -> np.ndarray | None:
        if classes is None:
            return None
        by_name = {v: k for k, v in self.names.items()}
        ids = []
        for c in classes:
            if isinstance(c, str) and c in by_name:
                ids.append(by_name[c])
            elif isinstance(c, int) and c in self.names:
                ids.append(c)
            else:
                raise DetectorError(f"{self.path}: class filter names unknown class {c!r}")
        return np.array(sorted(set(ids)), dtype=np.int64)

    # -- inference ------------------------------------------------------------------------------------

    def letterbox_for(self, height: int, width: int) -> Letterbox:
        """The letterbox for a picture size (cached: cameras keep their size)."""
        key = (height, width)
        lb = self._boxes_cache.get(key)
        if lb is None:
            lb = Letterbox.fit(height, width, self.imgsz, self.stride, minimal=self.dynamic_shape)
            self._boxes_cache[key] = lb
        return lb

    def detect(self, images: Sequence[np.ndarray]) -> list[sv.Detections]:
        boxes = [self.letterbox_for(im.shape[0], im.shape[1]) for im in images]
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, lb in enumerate(boxes):
            groups[lb.input_shape].append(i)
        results: list[sv.Detections | None] = [None] * len(images)
        for members in groups.values():
            step = self.fixed_batch or min(len(members), self.max_batch)
            for start in range(0, len(members), step):
                chunk = members[start : start + step]
                raw = self.infer([images[i] for i in chunk], [boxes[i] for i in chunk])
                t0 = time.perf_counter()
                for j, i in enumerate(chunk):
                    results[i] = self._to_detections(raw[j], boxes[i])
                self.stage_seconds["postprocess"] += time.perf_counter() - t0
        return results  # type: ignore[return-value]

    def infer(self, images: Sequence[np.ndarray], boxes: Sequence[Letterbox]) -> np.ndarray:
        """Raw network output for pictures that share one input shape: ``[n, 4 + nc, anchors]``."""
        batch = self.fixed_batch or len(images)
        t0 = time.perf_counter()
        tensor = self._buffers.fill(images, boxes, batch)
        if self._input_type is not np.float32:
            tensor = tensor.astype(self._input_type)
        t1 = time.perf_counter()
        out = self.run_tensor(tensor)
        self.stage_seconds["preprocess"] += t1 - t0
        self.stage_seconds["inference"] += time.perf_counter() - t1
        if out.ndim != 3 or out.shape[1] != 4 + len(self.names):
            raise DetectorError(
                f"{self.path}: unknown output layout {list(out.shape)}, "
                f"expected [batch, {4 + len(self.names)}, anchors]"
            )
        return out[: len(images)].astype(np.float32, copy=False)

    def run_tensor(self, tensor: np.ndarray) -> np.ndarray:
        """Raw network output for a ready input tensor (the session alone: benchmarks' limit)."""
        if self._binding is None:
            return self.session.run(None, {self._input_name: tensor})[0]
        # The input is bound in place (no copy); the output stays in onnxruntime's buffer.
        self._binding.bind_cpu_input(self._input_name, tensor)
        self._binding.bind_output(self._output_name, "cpu")
        self.session.run_with_iobinding(self._binding)
        return self._binding.get_outputs()[0].numpy()

    def _to_detections(self, pred: np.ndarray, lb: Letterbox) -> sv.Detections:
        xyxy, conf, cls = decode_predictions(pred, self._nms)
        lb.boxes_to_source(xyxy)
        return sv.Detections(
            xyxy=xyxy, confidence=conf, class_id=cls, data={"class_name": self._name_table[cls]}
        )
