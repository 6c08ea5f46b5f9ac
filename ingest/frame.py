"""The unit that flows from ingest to the detectors: one decoded picture and when it was taken."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(slots=True)
class Frame:
    """One decoded frame of one camera, ready for analysis.

    ``pts`` is stream time in seconds (from the container's timestamps, so it is
    right for variable-rate streams too); ``wall_time`` is ``time.time()`` when
    the frame left the decoder, used for frame-to-event latency.
    """

    camera: str
    index: int
    pts: float
    wall_time: float
    image: np.ndarray  # H x W x 3, uint8, BGR

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the picture."""
        return self.image.shape[0], self.image.shape[1]
