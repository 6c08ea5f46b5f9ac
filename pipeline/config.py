"""One camera's part of the configuration tree: where its picture comes from, and what the frame
step does with it (health checks, motion gate, tracker and rules)."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, model_validator

from events.config import CameraEventsConfig
from events.model import EventType
from events.traffic_config import CameraTrafficConfig
from ingest.config import CameraSourceConfig, ConfigModel
from ingest.decode import FALLBACK_FPS
from ingest.health import HealthConfig
from ingest.motion import MotionConfig


class ReplayConfig(ConfigModel):
    """A recorded file played as a camera at its real frame rate (demo, tests, capacity benchmarks)."""

    path: Path
    analysis_fps: float | None = Field(5.0, gt=0)
    speed: float = Field(1.0, gt=0, le=100)
    loop: bool = True


class ClipConfig(ConfigModel):
    """Video clips of a camera's security events, cut from its compressed stream (no re-encode).

    A clip runs from ``pre_roll_s`` before the event's start to ``post_roll_s`` after its end,
    at most ``max_length_s`` long; it starts at the last keyframe at or before that, so it can
    begin up to one keyframe interval earlier. ``buffer_mb`` caps the packets a camera holds
    (pre-roll and any clip being recorded).
    """

    enabled: bool = True
    pre_roll_s: float = Field(5.0, ge=0, le=60)
    post_roll_s: float = Field(5.0, ge=0, le=60)
    max_length_s: float = Field(60.0, gt=0, le=600)
    types: list[EventType] = Field(
        default_factory=lambda: [EventType.ZONE_INTRUSION, EventType.LOITERING, EventType.CROWDING]
    )
    buffer_mb: float = Field(48.0, gt=0, le=4096)


class CameraConfig(ConfigModel):
    """One camera: where its picture comes from, its health checks, motion gate, tracker and rules."""

    name: str = ""
    enabled: bool = True
    khu_pho: str | None = None  # id under ``khu_pho:``; who may see the camera (admins see all)
    # Polygons (camera pixels) blacked out before detection, snapshots and health checks.
    privacy_masks: list[list[tuple[float, float]]] = Field(default_factory=list)
    source: CameraSourceConfig | None = None  # a live camera (rtsp://...)
    replay: ReplayConfig | None = None  # or a recorded file
    health: HealthConfig | None = Field(default_factory=HealthConfig)  # null disables health checks
    # Skip the detector on still frames while nothing is tracked; null runs it on every analysed frame.
    motion: MotionConfig | None = Field(default_factory=MotionConfig)
    events: CameraEventsConfig = Field(default_factory=CameraEventsConfig)
    clips: ClipConfig = Field(default_factory=ClipConfig)
    # Calibration, lanes and no-stopping zones for speeds and congestion; null: no traffic analysis.
    traffic: CameraTrafficConfig | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.source is None) == (self.replay is None):
            raise ValueError("give exactly one of 'source' (a live camera URL) or 'replay' (a recorded file)")
        return self

    @property
    def analysis_fps(self) -> float:
        """Frames analysed per second (null in the config: every frame, taken as the fallback rate)."""
        fps = self.source.analysis_fps if self.source else self.replay.analysis_fps  # type: ignore[union-attr]
        return fps or FALLBACK_FPS
