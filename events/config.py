"""Configuration of the events stage: the tracker and the per-camera rules.

All coordinates are source-frame pixels (x right, y down) of the camera's
native resolution, whatever size the detector ran at. Times are seconds of
stream time unless a field says otherwise; ``active_hours`` are wall-clock
hours in the rule's (or camera's) time zone.

A camera's ``events`` section, in YAML::

    tracker:
      lost_buffer_s: 1.5
    rules:
      - name: gate_in
        type: line_crossing
        start: [120, 400]
        end: [820, 380]
        classes: [person, car, motorcycle]
      - name: yard_night
        type: zone_intrusion
        polygon: [[100, 300], [600, 300], [600, 700], [100, 700]]
        classes: [person]
        active_hours: "22:00-05:00"
"""

from __future__ import annotations

from datetime import time
from typing import Annotated, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from events.geometry import Anchor, as_polygon, polygon_area, polygon_is_simple
from ingest.config import ConfigModel

DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"

Point = tuple[float, float]
RuleName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


def check_polygon(value: list[Point]) -> list[Point]:
    """A zone's polygon as configured, if it has an area and its edges do not cross."""
    poly = as_polygon(value)
    if polygon_area(poly) <= 0.0:
        raise ValueError("polygon has no area")
    if not polygon_is_simple(poly):
        raise ValueError("polygon edges cross or touch each other")
    return value


def _check_timezone(name: str | None) -> str | None:
    if name is None:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as 'Asia/Ho_Chi_Minh')") from exc
    return name


class TimeWindow(ConfigModel):
    """A daily wall-clock window ``[start, end)``; it spans midnight when ``end <= start`` would be."""

    start_minute: int = Field(ge=0, lt=24 * 60)
    end_minute: int = Field(ge=0, le=24 * 60)

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if self.start_minute == self.end_minute:
            raise ValueError(f"active hours {self}: empty window (use 00:00-24:00 for all day)")
        return self

    @classmethod
    def parse(cls, text: str) -> TimeWindow:
        """``"HH:MM-HH:MM"``; ``"22:00-05:00"`` runs from 22:00 to 05:00 the next morning."""
        try:
            first, second = (part.strip() for part in text.split("-"))
            start = cls._minute(first, allow_24=False)
            end = cls._minute(second, allow_24=True)
        except ValueError as exc:
            raise ValueError(f"active hours {text!r}: expected 'HH:MM-HH:MM' ({exc})") from exc
        return cls(start_minute=start, end_minute=end)

    @staticmethod
    def _minute(text: str, *, allow_24: bool) -> int:
        if allow_24 and text == "24:00":
            return 24 * 60
        parsed = time.fromisoformat(text)
        if parsed.second or parsed.microsecond or len(text) != 5:
            raise ValueError(f"{text!r} is not HH:MM")
        return parsed.hour * 60 + parsed.minute

    def contains(self, minute_of_day: float) -> bool:
        if self.start_minute < self.end_minute:
            return self.start_minute <= minute_of_day < self.end_minute
        return minute_of_day >= self.start_minute or minute_of_day < self.end_minute

    def __str__(self) -> str:
        def fmt(m: int) -> str:
            return f"{m // 60:02d}:{m % 60:02d}"

        return f"{fmt(self.start_minute)}-{fmt(self.end_minute)}"


class TrackerConfig(ConfigModel):
    """ByteTrack settings (``trackers.ByteTrackTracker``), with the lost buffer in seconds."""

    # How long a track survives without a matching detection (occlusion, a missed
    # detection) before its id is given up.
    lost_buffer_s: float = Field(default=1.5, ge=0.0, le=30.0)
    # A detection must be at least this confident to start a new track.
    track_activation_threshold: float = Field(default=0.45, ge=0.0, le=1.0)
    # Detections at or above this go to the first association stage; lower ones
    # only extend existing tracks (ByteTrack's low-score recovery).
    high_conf_det_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    minimum_iou_threshold: float = Field(default=0.1, ge=0.0, le=1.0)
    # A track reaches the rules (gets an id) after this many consecutive matches.
    minimum_consecutive_frames: int = Field(default=2, ge=1, le=30)
    # One object, one box: before tracking, of boxes overlapping at least this much (IoU)
    # whatever their classes, only the most confident is kept. The detector's NMS is per class
    # (as Ultralytics'), so a minivan found as both car and truck comes with two boxes at IoU
    # 0.9+ (docs/notes/counting.md); None keeps every box.
    class_agnostic_nms_iou: float | None = Field(default=0.7, gt=0.0, le=1.0)


class _RuleBase(ConfigModel):
    name: RuleName
    # Class names the rule reacts to; empty means every class.
    classes: list[str] = Field(default_factory=list)
    min_confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    anchor: Anchor = Anchor.BOTTOM_CENTER
    # How the review console ranks this rule's items: "alert" (act now) or "detection" (look later);
    # null takes the type's default (intrusion, loitering, crowding: alert; line crossing: detection).
    severity: Literal["alert", "detection"] | None = None

    @field_validator("classes")
    @classmethod
    def _classes_unique(cls, value: list[str]) -> list[str]:
        if any(not c.strip() for c in value):
            raise ValueError("class names must not be empty")
        if len(set(value)) != len(value):
            raise ValueError("class names must not repeat")
        return value


class LineCrossingConfig(_RuleBase):
    """Count objects whose anchor crosses the directed segment ``start``->``end``.

    Direction (as in ``supervision.LineZone``): ``in`` is a crossing from the
    right-hand side to the left-hand side of start->end as seen on screen,
    ``out`` the opposite. For a line drawn left to right, moving up the picture
    is ``in``; swap ``start`` and ``end`` to swap the directions.

    A crossing needs the anchor to go from more than ``hysteresis_px`` on one
    side to more than ``hysteresis_px`` on the other, passing the line between
    its two ends; each track is counted at most once per line (its first
    crossing).
    """

    type: Literal["line_crossing"] = "line_crossing"
    start: Point
    end: Point
    hysteresis_px: float = Field(default=10.0, ge=0.0)
    # A snapshot of each crossing; off by default (privacy: counts need no picture of each passer-by).
    snapshots: bool = False

    @model_validator(mode="after")
    def _distinct_ends(self) -> Self:
        if self.start == self.end:
            raise ValueError("start and end must differ")
        return self


class _ZoneRuleBase(_RuleBase):
    polygon: list[Point] = Field(min_length=3)
    # The event ends once its condition has been false for this long (stream time).
    end_after_s: float = Field(default=2.0, ge=0.0)
    # At most one update transition per event per this many seconds; changes in
    # between are carried by the next update or by the end transition.
    update_interval_s: float = Field(default=1.0, ge=0.0)
    # When the rule is armed, in wall-clock time: "22:00-05:00" or a list of such
    # windows; None means always.
    active_hours: list[TimeWindow] | None = None
    # IANA time zone for active_hours; None means the camera's time zone.
    timezone: str | None = None

    @field_validator("active_hours", mode="before")
    @classmethod
    def _parse_hours(cls, value: object) -> object:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            return [TimeWindow.parse(v) if isinstance(v, str) else v for v in value]
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone_known(cls, value: str | None) -> str | None:
        return _check_timezone(value)

    @field_validator("polygon")
    @classmethod
    def _polygon_valid(cls, value: list[Point]) -> list[Point]:
        return check_polygon(value)


class ZoneIntrusionConfig(_ZoneRuleBase):
    """One event per episode of matching objects inside the polygon (during active hours)."""

    type: Literal["zone_intrusion"] = "zone_intrusion"


class LoiteringConfig(_ZoneRuleBase):
    """One event per tracked object that stays in the polygon for ``min_dwell_s`` or longer."""

    type: Literal["loitering"] = "loitering"
    min_dwell_s: float = Field(gt=0.0)


class CrowdingConfig(_ZoneRuleBase):
    """One event while at least ``min_count`` matching objects are in the polygon for ``min_duration_s``."""

    type: Literal["crowding"] = "crowding"
    min_count: int = Field(ge=1)
    min_duration_s: float = Field(default=3.0, ge=0.0)


RuleConfig = Annotated[
    LineCrossingConfig | ZoneIntrusionConfig | LoiteringConfig | CrowdingConfig,
    Field(discriminator="type"),
]


class CameraEventsConfig(ConfigModel):
    """One camera's tracker and rules."""

    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    rules: list[RuleConfig] = Field(default_factory=list)
    # An episode longer than this (a plaza crowded all afternoon) is split into events of this
    # length, each ending with end_reason "max_duration" and the next naming it in data.continues.
    max_event_s: float = Field(3600.0, gt=0)

    @field_validator("rules")
    @classmethod
    def _names_unique(cls, rules: list[RuleConfig]) -> list[RuleConfig]:
        seen: set[str] = set()
        for rule in rules:
            if rule.name in seen:
                raise ValueError(f"rule name {rule.name!r} is used twice on this camera")
            seen.add(rule.name)
        return rules


class EventsConfig(ConfigModel):
    """Settings of the events stage shared by all cameras."""

    # Wall-clock time zone of event times, traffic minutes and active hours.
    timezone: str = DEFAULT_TIMEZONE

    @field_validator("timezone")
    @classmethod
    def _timezone_known(cls, value: str) -> str:
        _check_timezone(value)
        return value
