"""The detector plugin interface: a batch of BGR pictures in, one Detections per picture out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import supervision as sv


class DetectorError(Exception):
    """A model that cannot be loaded or used, with a message naming the file and the reason."""


class Detector(ABC):
    """What every runtime plugin provides (cf. Frigate's ``DetectionApi``).

    ``detect`` takes pictures of any sizes and returns, for each, a
    ``supervision.Detections`` with ``xyxy`` in that picture's pixels,
    ``confidence``, ``class_id`` and ``data["class_name"]``.
    """

    names: dict[int, str]
    max_batch: int  # most pictures one ``detect`` call runs at once; the batcher gathers this many
    runtime: str = "unknown"  # what runs the network ("onnxruntime", "openvino"), for logs and /metrics
    precision: str = "fp32"  # its arithmetic ("fp32", "bf16", "int8")

    @abstractmethod
    def detect(self, images: Sequence[np.ndarray]) -> list[sv.Detections]: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the runtime's resources."""
