"""What camera-health analysis reports: the conditions, their start/clear changes, the measures."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class HealthCondition(StrEnum):
    """A way a camera's picture can fail while frames keep arriving.

    The service maps each to its event type by name (``"camera_" + value``, e.g.
    ``EventType.CAMERA_BLOCKED``); ingest does not import the events stage.
    """

    FROZEN = "frozen"  # the picture stopped changing
    BLOCKED = "blocked"  # covered, blacked out or blinded: the picture lost its content
    BLURRED = "blurred"  # defocused or smeared: detail dropped against the camera's own baseline
    MOVED = "moved"  # turned, shifted or rotated away from the learned reference view


@dataclass(frozen=True, slots=True)
class HealthChange:
    """A condition started (``active=True``) or cleared (``active=False``) on one camera.

    ``pts`` is the stream time (s) of the sample that confirmed the change (after
    the condition's ``*_after_s`` or ``clear_after_s``); ``since`` is when the
    fault (or its end) was first seen, so ``since`` is the event's start/end time
    and ``pts - since`` the confirmation delay. ``value`` is the named ``measure``
    at ``pts`` and ``threshold`` the limit it was compared with (the clearing
    limit, hysteresis included, for a clear).
    """

    camera: str
    condition: HealthCondition
    active: bool
    pts: float
    since: float
    measure: str
    value: float | None
    threshold: float | None

    def data(self) -> dict[str, Any]:
        """The fields an event's ``data`` carries: measure, value, threshold, since."""
        return {
            "measure": self.measure,
            "value": self.value,
            "threshold": self.threshold,
            "since": self.since,
        }


@dataclass(frozen=True, slots=True)
class HealthMeasures:
    """Everything measured on one analysed sample, for metrics, tuning and tests.

    Grey levels are on a 0-255 full-range scale of the working picture. The
    baseline-relative measures are ``None`` while the reference is being
    learned (and ``shift_px``/``similarity`` also when the scene has too little
    structure to judge its geometry).
    """

    pts: float
    mean_luma: float  # mean grey level
    luma_std: float  # standard deviation of the grey levels over the picture
    blank_fraction: float  # fraction of blocks with no texture (local std below blank_block_std)
    changed_fraction: float  # fraction of pixels that differ from the frozen-check anchor
    unchanged_s: float  # how long the picture has not changed (s)
    sharpness: float  # variance of the Laplacian of the working picture (fine detail)
    detail_ratio: float | None  # sharpness now / its learned baseline
    sharpness_ratio: float | None  # larger of detail_ratio and its contrast-normalised twin
    shift_px: float | None  # displacement of the view from the reference, source pixels
    similarity: float | None  # phase-correlation peak now / its learned baseline
    learning: bool  # the reference and baselines are still being learned

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
