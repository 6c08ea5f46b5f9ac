from __future__ import annotations

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from events.config import (
    CameraEventsConfig,
    CrowdingConfig,
    EventsConfig,
    LineCrossingConfig,
    LoiteringConfig,
    TimeWindow,
    ZoneIntrusionConfig,
)
from events.geometry import Anchor

EXAMPLE = """
tracker:
  lost_buffer_s: 1.5
rules:
  - name: gate_count
    type: line_crossing
    start: [120, 400]
    end: [820, 380]
    classes: [person, bicycle, motorcycle, car]
    hysteresis_px: 12
    anchor: bottom_center
  - name: yard_night
    type: zone_intrusion
    polygon: [[100, 300], [600, 300], [600, 700], [100, 700]]
    classes: [person]
    min_confidence: 0.5
    active_hours: "22:00-05:00"
    end_after_s: 2
  - name: door_loiter
    type: loitering
    polygon: [[700, 200], [900, 200], [900, 500], [700, 500]]
    classes: [person]
    min_dwell_s: 60
  - name: crowd_square
    type: crowding
    polygon: [[0, 0], [1280, 0], [1280, 720], [0, 720]]
    classes: [person]
    min_count: 8
    min_duration_s: 10
"""


def test_example_yaml() -> None:
    config = CameraEventsConfig.model_validate(yaml.safe_load(EXAMPLE))
    line, zone, loiter, crowd = config.rules
    assert isinstance(line, LineCrossingConfig) and line.start == (120, 400) and line.hysteresis_px == 12
    assert isinstance(zone, ZoneIntrusionConfig) and zone.active_hours == [TimeWindow.parse("22:00-05:00")]
    assert str(zone.active_hours[0]) == "22:00-05:00" and zone.timezone is None
    assert (
        isinstance(loiter, LoiteringConfig)
        and loiter.min_dwell_s == 60
        and loiter.anchor is Anchor.BOTTOM_CENTER
    )
    assert isinstance(crowd, CrowdingConfig) and crowd.min_count == 8
    assert config.tracker.lost_buffer_s == 1.5
    assert EventsConfig().timezone == "Asia/Ho_Chi_Minh"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"name": "a", "type": "line_crossing", "start": [0, 0], "end": [1, 1], "colour": "red"}, "colour"),
        ({"name": "a", "type": "line_crossing", "start": [0, 0], "end": [0, 0]}, "differ"),
        ({"name": "a", "type": "teleport"}, "type"),
        ({"name": "a b", "type": "zone_intrusion", "polygon": [[0, 0], [1, 0], [0, 1]]}, "name"),
        ({"name": "a", "type": "zone_intrusion", "polygon": [[0, 0], [1, 0]]}, "polygon"),
        ({"name": "a", "type": "zone_intrusion", "polygon": [[0, 0], [1, 1], [2, 2]]}, "no area"),
        ({"name": "a", "type": "zone_intrusion", "polygon": [[0, 0], [10, 10], [10, 0], [0, 5]]}, "cross"),
        (
            {
                "name": "a",
                "type": "zone_intrusion",
                "polygon": [[0, 0], [9, 0], [0, 9]],
                "active_hours": "22-5",
            },
            "HH:MM",
        ),
        (
            {
                "name": "a",
                "type": "zone_intrusion",
                "polygon": [[0, 0], [9, 0], [0, 9]],
                "active_hours": "05:00-05:00",
            },
            "empty",
        ),
        (
            {
                "name": "a",
                "type": "zone_intrusion",
                "polygon": [[0, 0], [9, 0], [0, 9]],
                "timezone": "Mars/Base",
            },
            "time zone",
        ),
        ({"name": "a", "type": "loitering", "polygon": [[0, 0], [9, 0], [0, 9]]}, "min_dwell_s"),
        ({"name": "a", "type": "crowding", "polygon": [[0, 0], [9, 0], [0, 9]], "min_count": 0}, "min_count"),
        (
            {"name": "a", "type": "line_crossing", "start": [0, 0], "end": [1, 1], "classes": ["car", "car"]},
            "repeat",
        ),
        ({"name": "a", "type": "line_crossing", "start": [0, 0], "end": [1, 1], "anchor": "feet"}, "anchor"),
    ],
)
def test_invalid_rules_name_the_problem(rule: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CameraEventsConfig.model_validate({"rules": [rule]})


def test_rule_names_unique_per_camera() -> None:
    rule = {"name": "gate", "type": "line_crossing", "start": [0, 0], "end": [1, 1]}
    with pytest.raises(ValidationError, match="used twice"):
        CameraEventsConfig.model_validate({"rules": [rule, rule]})


def test_time_window_parsing() -> None:
    assert TimeWindow.parse("00:00-24:00").contains(0) and TimeWindow.parse("00:00-24:00").contains(1439.9)
    night = TimeWindow.parse("22:00-05:00")
    assert night.contains(22 * 60) and night.contains(0) and not night.contains(5 * 60)
    day = TimeWindow.parse(" 08:30 - 17:00 ")
    assert day.contains(8 * 60 + 30) and not day.contains(17 * 60) and not day.contains(8 * 60 + 29)
    for bad in ["24:00-05:00", "8:00-9:00", "08:00", "08:00-09:00-10:00", "08:60-09:00"]:
        with pytest.raises(ValueError):
            TimeWindow.parse(bad)


@given(st.integers(0, 1439), st.integers(0, 1439), st.floats(0, 1439.99))
def test_time_window_against_a_list_of_minutes(a: int, b: int, minute: float) -> None:
    if a == b:
        return
    window = TimeWindow.parse(f"{a // 60:02d}:{a % 60:02d}-{b // 60:02d}:{b % 60:02d}")
    covered = {(a + k) % 1440 for k in range((b - a) % 1440)}
    assert window.contains(minute) == (int(minute) in covered)
