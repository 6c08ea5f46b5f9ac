"""Configuration of traffic information: calibration, lanes, congestion levels and road segments.

A camera's ``traffic`` section (pixels of the camera's own frames; metres on the road)::

    traffic:
      calibration:
        image: [[138, 219], [202.5, 142], [269, 142], [235, 219]]
        road:  [[0, 0], [0, 60], [3.75, 60], [3.75, 0]]
      lanes:
        - name: northbound
          polygon: [[120, 240], [200, 140], [275, 140], [250, 240]]
          direction: [[190, 230], [235, 140]]     # the way traffic should go, on screen
          free_flow_kmh: 100                      # or null: learned (see CongestionConfig)
      no_stopping:
        - name: hard_shoulder
          polygon: [[250, 240], [275, 140], [300, 140], [300, 240]]

The root ``traffic`` section names the road segments that signage shows::

    traffic:
      segments:
        - id: dien-bien-phu-north
          name: "Điện Biên Phủ (hướng Bắc)"
          name_en: "Dien Bien Phu northbound"
          lanes: [highway/northbound]             # camera/lane
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, field_validator, model_validator

from events.config import Point, RuleName, TimeWindow, check_polygon
from events.speed import CalibrationError, RoadPlane
from ingest.config import ConfigModel


class CalibrationConfig(ConfigModel):
    """Four image points (pixels) and the same four points on the road (metres, any planar frame)."""

    image: list[Point] = Field(min_length=4, max_length=4)
    road: list[Point] = Field(min_length=4, max_length=4)

    @model_validator(mode="after")
    def _usable(self) -> Self:
        try:
            self.plane()
        except CalibrationError as exc:
            raise ValueError(str(exc)) from None
        return self

    def plane(self) -> RoadPlane:
        return RoadPlane(self.image, self.road)


class SpeedConfig(ConfigModel):
    """How a track's speed is measured (see ``events.speed``)."""

    window_s: float = Field(default=1.0, gt=0.0, le=10.0)
    # The speed is reported only once the kept positions span this much stream time.
    min_span_s: float = Field(default=0.5, gt=0.0, le=10.0)
    min_samples: int = Field(default=3, ge=2, le=100)
    # A jump faster than this from the last accepted position is rejected as a bad box.
    max_speed_kmh: float = Field(default=250.0, gt=0.0)

    @model_validator(mode="after")
    def _span_in_window(self) -> Self:
        if self.min_span_s > self.window_s:
            raise ValueError("min_span_s must not exceed window_s")
        return self


class LaneConfig(ConfigModel):
    """One lane: its zone on screen, the way traffic should go, its free-flow speed."""

    name: RuleName
    polygon: list[Point] = Field(min_length=3)
    # Two image points, from where traffic comes to where it goes; null: no direction
    # (no wrong-way events; counts are "unknown" direction).
    direction: tuple[Point, Point] | None = None
    # Configured free-flow speed; null learns it as the 85th percentile of quiet-hour speeds.
    free_flow_kmh: float | None = Field(default=None, gt=0.0, le=300.0)
    classes: list[str] = Field(default_factory=lambda: ["car", "motorcycle", "bus", "truck", "bicycle"])

    @field_validator("polygon")
    @classmethod
    def _polygon_valid(cls, value: list[Point]) -> list[Point]:
        return check_polygon(value)

    @field_validator("direction")
    @classmethod
    def _direction_has_length(cls, value: tuple[Point, Point] | None) -> tuple[Point, Point] | None:
        if value is not None and value[0] == value[1]:
            raise ValueError("direction needs two different points")
        return value


class NoStoppingZoneConfig(ConfigModel):
    """A zone where a vehicle standing still is an event (``stopped_vehicle``)."""

    name: RuleName
    polygon: list[Point] = Field(min_length=3)
    classes: list[str] = Field(default_factory=lambda: ["car", "motorcycle", "bus", "truck"])

    @field_validator("polygon")
    @classmethod
    def _polygon_valid(cls, value: list[Point]) -> list[Point]:
        return check_polygon(value)


class CameraTrafficConfig(ConfigModel):
    """One camera's calibration, lanes and no-stopping zones."""

    calibration: CalibrationConfig
    speed: SpeedConfig = Field(default_factory=SpeedConfig)
    lanes: list[LaneConfig] = Field(default_factory=list)
    no_stopping: list[NoStoppingZoneConfig] = Field(default_factory=list)
    # A vehicle slower than this counts as stopped; stopped this long in a no-stopping zone is an event.
    stopped_speed_kmh: float = Field(default=3.0, ge=0.0)
    stopped_after_s: float = Field(default=30.0, gt=0.0)
    # Moving against the lane's direction (more than 120 degrees off), at least this fast, this long.
    wrong_way_min_kmh: float = Field(default=8.0, ge=0.0)
    wrong_way_after_s: float = Field(default=1.0, gt=0.0)

    @model_validator(mode="after")
    def _names_unique(self) -> Self:
        names = [lane.name for lane in self.lanes] + [zone.name for zone in self.no_stopping]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"lane / zone names must be unique on a camera: {sorted(dup)}")
        return self


class CongestionConfig(ConfigModel):
    """Level thresholds as shares of the free-flow speed (DATEX II ``trafficStatus`` vocabulary).

    ``freeFlow`` at or above ``heavy_below``, ``heavy`` below it, ``congested``
    below ``congested_below``, ``stationary`` below ``stationary_below``. To
    leave a level the ratio must pass the threshold by ``hysteresis`` and the
    new level must hold for ``hold_s``, so a level does not flicker.
    """

    heavy_below: float = Field(default=0.7, gt=0.0, le=1.0)
    congested_below: float = Field(default=0.45, gt=0.0, le=1.0)
    stationary_below: float = Field(default=0.15, gt=0.0, le=1.0)
    hysteresis: float = Field(default=0.05, ge=0.0, le=0.3)
    hold_s: float = Field(default=10.0, ge=0.0)
    # Speeds averaged over this much recent time give the lane's current speed.
    window_s: float = Field(default=60.0, gt=0.0)
    # Free-flow speed, when a lane configures none: the 85th percentile of vehicle speeds
    # measured in quiet hours, once min_samples of them are known (until then: unknown).
    quiet_hours: list[TimeWindow] = Field(default_factory=lambda: [TimeWindow.parse("22:00-05:00")])
    learn_min_samples: int = Field(default=50, ge=5)

    @field_validator("quiet_hours", mode="before")
    @classmethod
    def _parse_hours(cls, value: object) -> object:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            return [TimeWindow.parse(v) if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not self.stationary_below < self.congested_below < self.heavy_below:
            raise ValueError("thresholds must satisfy stationary_below < congested_below < heavy_below")
        return self


LaneRef = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}/[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class SegmentConfig(ConfigModel):
    """A named piece of road shown on signage: one or more camera lanes."""

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    name: str = Field(min_length=1, max_length=80)  # Vietnamese, with diacritics
    name_en: str = Field(default="", max_length=80)
    lanes: list[LaneRef] = Field(min_length=1)


class TrafficConfig(ConfigModel):
    """Road segments, congestion levels and staleness, shared by all cameras."""

    segments: list[SegmentConfig] = Field(default_factory=list)
    congestion: CongestionConfig = Field(default_factory=CongestionConfig)
    # A camera with no analysed frame for this long (or offline, blocked, frozen or moved)
    # is unhealthy; a segment with no healthy camera is "unknown". Keep it below the cameras'
    # offline_grace_s so signage goes blank before the camera is even declared offline.
    stale_after_s: float = Field(default=5.0, gt=0.0)
    # The share of time cameras were healthy is measured over this much recent time.
    uptime_window_s: float = Field(default=900.0, gt=0.0)
    # How often segment states are recomputed and published.
    tick_s: float = Field(default=1.0, gt=0.0, le=60.0)
    # Public live stream: at most this many clients at once (more get 503).
    max_stream_clients: int = Field(default=1000, ge=1)
    stream_heartbeat_s: float = Field(default=5.0, gt=0.0)
    # Per-lane minutes kept in memory for /public/traffic.
    history_minutes: int = Field(default=15, ge=1, le=1440)

    @field_validator("segments")
    @classmethod
    def _ids_unique(cls, segments: list[SegmentConfig]) -> list[SegmentConfig]:
        ids = [s.id for s in segments]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"segment ids must be unique: {sorted(dup)}")
        return segments
