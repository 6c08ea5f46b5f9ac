"""Detection stage: pictures in, ``supervision.Detections`` out."""

from detectors.base import Detector, DetectorError
from detectors.config import DetectorConfig
from detectors.runtime import RuntimeChoice, choose_runtime, open_detector
from detectors.yolo_base import YoloDetector
from detectors.yolo_onnx import YoloOnnxDetector

__all__ = [
    "Detector",
    "DetectorConfig",
    "DetectorError",
    "RuntimeChoice",
    "YoloDetector",
    "YoloOnnxDetector",
    "choose_runtime",
    "open_detector",
]
