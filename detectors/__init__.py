"""Detection stage: pictures in, ``supervision.Detections`` out."""

from detectors.base import Detector, DetectorError
from detectors.config import DetectorConfig
from detectors.yolo_onnx import YoloOnnxDetector

__all__ = ["Detector", "DetectorConfig", "DetectorError", "YoloOnnxDetector"]
