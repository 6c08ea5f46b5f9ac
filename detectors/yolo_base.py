"""What every YOLO runtime plugin shares: metadata, letterbox, batching by input shape, postprocessing.

A runtime plugin (onnxruntime, OpenVINO) opens the model, reads its signature
and metadata, calls :meth:`YoloDetector._configure` and implements
:meth:`YoloDetector.run_tensor`; pictures in and ``Detections`` out are the
same code for every runtime, so their results differ only by the network's
arithmetic.
"""

from __future__ import annotations

import ast
import logging
import time
from abc import abstractmethod
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import supervision as sv

from detectors.base import Detector, DetectorError
from detectors.config import DetectorConfig
from detectors.letterbox import InputBuffers, Letterbox
from detectors.postprocess import NmsSettings, decode_predictions

log = logging.getLogger(__name__)


class YoloDetector(Detector):
    """Any Ultralytics-exported detection model with output ``[batch, 4 + classes, anchors]``.

    Dynamic-shape models get Ultralytics' minimal-padding letterbox (the input
    follows each picture's aspect ratio, padded to stride multiples), so
    detections match Ultralytics'; fixed-shape models get the square letterbox
    they were exported for. Pictures of one call are grouped by input shape and
    each group runs as one batch (split to the model's fixed batch, or to
    ``max_batch``). Not thread-safe: one caller at a time (the batcher is that caller).
    """

    config: DetectorConfig
    path: Path
    fixed_batch: int | None
    _input_type: type[np.floating] = np.float32

    def _configure(
        self,
        meta: Mapping[str, str],
        input_hw: tuple[object, object],
        fixed_batch: int | None,
        out_channels: int | None,
    ) -> None:
        """Everything after the runtime has opened the model: ``meta`` is the ONNX metadata map,
        ``input_hw`` the input's height and width (ints, or anything else for dynamic ones)."""
        if meta.get("end2end", "False") == "True":
            raise DetectorError(
                f"{self.path}: end-to-end (NMS-free, [batch, max_det, 6]) export; "
                "export without end2end/nms for output [batch, 4 + classes, anchors]"
            )
        if meta.get("task", "detect") != "detect":
            raise DetectorError(f"{self.path}: task is {meta['task']!r}, not 'detect'")
        self.fixed_batch = fixed_batch
        self.names = self._read_names(meta.get("names"), out_channels)
        self._name_table = np.array(
            [self.names.get(i, str(i)) for i in range(max(self.names) + 1)], dtype=object
        )
        self.stride = int(meta.get("stride", 32))
        self.imgsz = self._input_size(*input_hw)
        self._nms = NmsSettings(
            conf=self.config.conf,
            iou=self.config.iou,
            classes=self._class_filter(self.config.classes),
            max_det=self.config.max_det,
        )
        self._buffers = InputBuffers()
        self._boxes_cache: dict[tuple[int, int], Letterbox] = {}
        # Cumulative seconds per stage, for benchmarks' breakdowns (a few perf_counter calls per batch).
        self.stage_seconds = {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}

    def _read_names(self, raw: str | None, out_channels: int | None) -> dict[int, str]:
        if raw:
            try:
                names = {int(k): str(v) for k, v in ast.literal_eval(raw).items()}
            except (ValueError, SyntaxError, AttributeError) as exc:
                raise DetectorError(f"{self.path}: unreadable class names in metadata ({exc})") from exc
        elif out_channels is not None:
            names = {i: f"class{i}" for i in range(out_channels - 4)}
        else:
            raise DetectorError(f"{self.path}: no class names in metadata and no fixed output size")
        if out_channels is not None and out_channels != 4 + len(names):
            raise DetectorError(
                f"{self.path}: unknown output layout: {out_channels} channels per anchor, "
                f"expected 4 + {len(names)} classes"
            )
        return names

    def _input_size(self, h: object, w: object) -> tuple[int, int]:
        self.dynamic_shape = not (isinstance(h, int) and isinstance(w, int))
        if isinstance(h, int) and isinstance(w, int):
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

    @abstractmethod
    def run_tensor(self, tensor: np.ndarray) -> np.ndarray:
        """Raw network output for a ready input tensor (the runtime alone: benchmarks' limit)."""

    def _to_detections(self, pred: np.ndarray, lb: Letterbox) -> sv.Detections:
        xyxy, conf, cls = decode_predictions(pred, self._nms)
        lb.boxes_to_source(xyxy)
        return sv.Detections(
            xyxy=xyxy, confidence=conf, class_id=cls, data={"class_name": self._name_table[cls]}
        )
