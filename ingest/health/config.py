"""Per-camera settings of camera-health analysis: every threshold, with its unit and why the default.

Defaults come from measurements on the sample footage in ``/work/shared/footage``
(night lane, plaza with a drifting view, intersection, busy India junction,
highway, parking lot, PETS street) with the faults the tests apply; the ranges
quoted below are those measurements. Grey levels are on a 0-255 scale of the
downscaled working picture (``work_width`` wide); pixel distances are in the
pixels of the picture passed to the monitor.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from ingest.config import ConfigModel
from ingest.health.conditions import HealthCondition


class HealthConfig(ConfigModel):
    """Camera-health thresholds for one camera."""

    checks: frozenset[HealthCondition] = Field(
        default=frozenset(HealthCondition),
        description="Conditions to check. Leave out 'moved' for a PTZ or patrolling camera.",
    )

    # --- sampling and timing --------------------------------------------------------------------
    analysis_fps: float = Field(
        default=2.0,
        gt=0,
        le=30,
        description="Samples analysed per second of stream time (Hz); other frames cost nothing. "
        "Every condition is about seconds, so 2 Hz resolves them to 0.5 s.",
    )
    work_width: int = Field(
        default=320,
        ge=64,
        le=1920,
        description="Width (px) of the grey working picture all measures run on (aspect kept).",
    )
    learn_s: float = Field(
        default=5.0,
        gt=0,
        description="Seconds of picture (from the start, and again after a change of picture size) the "
        "reference view and the sharpness and similarity baselines are learned from, as medians so a few odd "
        "samples (a camera that settles, a cut from another camera) do not count.",
    )
    clear_after_s: float = Field(
        default=3.0,
        ge=0,
        description="A condition clears once its fault has been absent this long (s).",
    )
    hysteresis: float = Field(
        default=0.2,
        ge=0,
        lt=1,
        description="Relative margin between a threshold and its clearing value: an active condition "
        "clears only once the measure is this fraction beyond the threshold on the healthy side.",
    )
    max_gap_s: float = Field(
        default=5.0,
        gt=0,
        description="A jump in stream time longer than this (s), or going back, is a discontinuity "
        "(reconnect, restart): pending timers restart, active conditions stay.",
    )
    adapt_s: float | None = Field(
        default=600.0,
        gt=0,
        description="Time constant (s) with which the reference view and baselines follow slow "
        "changes (dusk, a slow drift) while the picture is healthy; None keeps them fixed.",
    )

    # --- frozen --------------------------------------------------------------------------------
    frozen_after_s: float = Field(
        default=10.0,
        ge=0,
        description="Picture unchanged this long (s) while frames keep coming is 'frozen'.",
    )
    frozen_pixel_delta: int = Field(
        default=3,
        ge=1,
        le=255,
        description="A working pixel has changed when it differs by at least this many grey levels.",
    )
    frozen_changed_fraction: float = Field(
        default=0.02,
        gt=0,
        lt=1,
        description="The picture has changed when at least this fraction of pixels changed. 2% lets a "
        "live clock overlay (<1% of a 640x480 picture) tick on a frozen picture; the static night "
        "lane changes >=10% of pixels within any 10 s.",
    )

    # --- blocked -------------------------------------------------------------------------------
    blocked_after_s: float = Field(
        default=5.0,
        ge=0,
        description="Picture blocked this long (s) is 'blocked'.",
    )
    dark_luma: float = Field(
        default=40.0,
        ge=0,
        le=255,
        description="Blacked out: mean grey level at most this (black is 0 full range, 16 limited) ...",
    )
    dark_std: float = Field(
        default=10.0,
        ge=0,
        description="... and grey-level standard deviation at most this. The night lane has mean "
        ">=64, std ~61: dark but structured.",
    )
    blank_block_std: float = Field(
        default=4.0,
        gt=0,
        description="A block (1/16 of the width, square) is blank when its grey-level std is below this.",
    )
    blocked_fraction: float = Field(
        default=0.75,
        gt=0,
        le=1,
        description="Covered: at least this fraction of blocks blank (a hand over 90% of the view "
        "gives ~0.9; clean clips <=0.46 except the empty car park, ~0.9, see min_textured) ...",
    )
    blocked_sharpness_ratio: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="... and detail at most this fraction of the learned baseline, so a scene that "
        "is featureless by nature (an empty car park) is not 'covered'.",
    )

    # --- blurred -------------------------------------------------------------------------------
    blurred_after_s: float = Field(
        default=10.0,
        ge=0,
        description="Detail below blurred_ratio this long (s) is 'blurred'.",
    )
    blurred_ratio: float = Field(
        default=0.35,
        gt=0,
        lt=1,
        description="Blurred when the sharpness ratio (detail against the learned baseline) is below "
        "this. Clean clips stay >=0.75; a Gaussian blur of sigma 3 px (720p) gives <=0.16.",
    )

    # --- moved ---------------------------------------------------------------------------------
    moved_after_s: float = Field(
        default=5.0,
        ge=0,
        description="View away from the reference this long (s) is 'moved'.",
    )
    moved_px: float = Field(
        default=32.0,
        gt=0,
        description="Moved when the view is shifted more than this (pixels of the picture passed in). "
        "The plaza clip's slow drift reaches ~17 px against its learned reference (25 px end to "
        "end); the tests shift by 40 px.",
    )
    moved_similarity: float = Field(
        default=0.3,
        gt=0,
        lt=1,
        description="Moved when the phase-correlation peak against the reference falls below this "
        "fraction of its learned baseline (rotated or different view). Clean clips stay >=0.44 "
        "(plaza, crowded and drifting), most >=0.8; a 5-10 degree rotation or another scene "
        "gives <=0.2 on structured scenes.",
    )
    moved_width: int = Field(
        default=160,
        ge=32,
        le=640,
        description="Width (px) of the picture the view is matched on; low so that moving objects "
        "and defocus matter less than the layout of the scene.",
    )

    # --- scenes without structure ----------------------------------------------------------------
    min_textured: float = Field(
        default=0.4,
        ge=0,
        le=1,
        description="The covered and moved checks run only when at least this fraction of the learned "
        "view has texture (non-blank blocks). In a featureless view (the empty car park: ~0.15) a "
        "cover looks like the scene and any match is chance; dark pictures are still 'blocked'. "
        "The other clips learn 0.7-1.0.",
    )

    @model_validator(mode="after")
    def _moved_fits(self) -> HealthConfig:
        if self.moved_width > self.work_width:
            raise ValueError("moved_width must not exceed work_width")
        return self
