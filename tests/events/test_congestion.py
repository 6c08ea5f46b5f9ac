"""Congestion levels with hysteresis, road segments and staleness, from scripted speeds."""

from __future__ import annotations

import itertools
import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.congestion import Level, LevelHysteresis, TrafficBoard, classify
from events.lanes import LaneLive, LaneMinute, TrafficOutput
from events.model import Event, EventTransition, EventType, Phase
from events.storage.bus import EventBus
from events.traffic_config import CongestionConfig, TrafficConfig
from tests.api.support import T0

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_classify_thresholds() -> None:
    c = CongestionConfig()
    assert [classify(r, c) for r in (1.2, 0.7, 0.69, 0.45, 0.44, 0.15, 0.14, 0.0)] == [
        Level.FREE_FLOW, Level.FREE_FLOW, Level.HEAVY, Level.HEAVY,
        Level.CONGESTED, Level.CONGESTED, Level.STATIONARY, Level.STATIONARY,
    ]  # fmt: skip


def test_hysteresis_ignores_flicker_around_a_threshold() -> None:
    h = LevelHysteresis(CongestionConfig(hysteresis=0.05, hold_s=10))
    assert h.update(0.8, 0) is Level.FREE_FLOW
    # Ratio wobbling 0.67..0.73 around the 0.7 threshold: never leaves freeFlow.
    levels = {h.update(0.7 + 0.03 * (-1) ** i, float(i)) for i in range(60)}
    assert levels == {Level.FREE_FLOW}


def test_hysteresis_needs_the_new_level_to_hold() -> None:
    h = LevelHysteresis(CongestionConfig(hysteresis=0.05, hold_s=10))
    h.update(0.9, 0)
    assert h.update(0.3, 1) is Level.FREE_FLOW  # one bad reading is not congestion
    assert h.update(0.9, 2) is Level.FREE_FLOW
    for t in range(3, 13):
        assert h.update(0.3, float(t)) is Level.FREE_FLOW
    assert h.update(0.3, 13) is Level.CONGESTED  # held for 10 s
    assert h.update(0.48, 20) is Level.CONGESTED  # above 0.45 but not by the 0.05 band
    for t in range(21, 32):
        h.update(0.56, float(t))
    assert h.level is Level.HEAVY
    assert h.update(None, 40) is Level.UNKNOWN
    assert h.update(0.05, 41) is Level.STATIONARY  # the first value after unknown is taken at once


def board_with(clock: Clock, **kw) -> TrafficBoard:  # type: ignore[no-untyped-def]
    config = TrafficConfig.model_validate(
        {
            "segments": [
                {"id": "dbp", "name": "Điện Biên Phủ", "name_en": "Dien Bien Phu", "lanes": ["a/up", "b/up"]},
                {"id": "ntmk", "name": "Nguyễn Thị Minh Khai", "lanes": ["b/down"]},
            ],
            "congestion": {"hold_s": 5, "hysteresis": 0.05},
            "stale_after_s": 3,
            **kw,
        }
    )
    return TrafficBoard(config, {"a": ["up"], "b": ["up", "down"]}, TZ, clock=clock)


def report(board: TrafficBoard, clock: Clock, camera: str, **speeds: float | None) -> None:
    live = [
        LaneLive(camera, lane, clock.now, speed, 50.0, 0.2 if speed is not None else 0.0, 1)
        for lane, speed in speeds.items()
    ]
    board.report(camera=camera, output=TrafficOutput([], [], [], live))


def segment(board: TrafficBoard, seg_id: str) -> dict:
    return next(s for s in board.tick().segments() if s["id"] == seg_id)


def test_segment_levels_follow_scripted_speeds() -> None:
    clock = Clock()
    board = board_with(clock)
    for _ in range(10):  # 40 and 30 km/h of 50 free flow: ratio 0.7 -> freeFlow
        report(board, clock, "a", up=40.0)
        report(board, clock, "b", up=30.0, down=None)
        clock.now += 1
        dbp = segment(board, "dbp")
    assert dbp["level"] == "freeFlow" and dbp["speed_kmh"] == 35.0 and dbp["level_vi"] == "Thông thoáng"
    assert segment(board, "ntmk")["level"] == "freeFlow"  # an empty lane on a working camera
    levels = []
    for _ in range(10):  # both lanes crawl at 3 km/h: stationary after the 5 s hold
        report(board, clock, "a", up=3.0)
        report(board, clock, "b", up=3.0, down=None)
        clock.now += 1
        levels.append(segment(board, "dbp")["level"])
    assert levels[:4] == ["freeFlow"] * 4 and levels[-1] == "stationary", levels
    assert segment(board, "dbp")["stale"] is False


def test_a_camera_going_silent_makes_its_segment_unknown_within_stale_after() -> None:
    clock = Clock()
    board = board_with(clock)
    for _ in range(5):
        report(board, clock, "a", up=40.0)
        report(board, clock, "b", up=40.0, down=40.0)
        clock.now += 1
        board.tick()
    # Camera b stops; a keeps reporting: dbp still has a lane, ntmk has none.
    for _ in range(4):
        report(board, clock, "a", up=40.0)
        clock.now += 1
    state = board.tick()
    ntmk = next(s for s in state.segments() if s["id"] == "ntmk")
    dbp = next(s for s in state.segments() if s["id"] == "dbp")
    assert ntmk["level"] == "unknown" and ntmk["stale"] and ntmk["speed_kmh"] is None
    assert ntmk["level_vi"] == "Không có dữ liệu" and ntmk["age_s"] >= 4
    assert dbp["level"] == "freeFlow" and dbp["speed_kmh"] == 40.0
    lane = next(la for la in state.document["lanes"] if la["id"] == "b/down")
    assert lane["healthy"] is False and lane["status"] == "stale" and lane["speed_kmh"] is None
    assert 0.0 < ntmk["healthy_share"] < 1.0


def test_blocked_camera_event_on_the_bus_makes_it_unknown_at_once() -> None:
    clock = Clock()
    board = board_with(clock)
    bus = EventBus()
    board.watch(bus)
    report(board, clock, "b", up=40.0, down=40.0)
    assert segment(board, "ntmk")["level"] == "freeFlow"
    blocked = Event(
        camera="b", rule="camera_health", type=EventType.CAMERA_BLOCKED, start_pts=0, start_time=T0
    )
    bus.publish(EventTransition(phase=Phase.START, event=blocked))
    report(board, clock, "b", up=40.0, down=40.0)  # frames still come, but show nothing useful
    state = board.tick()
    assert next(s for s in state.segments() if s["id"] == "ntmk")["level"] == "unknown"
    assert next(la for la in state.document["lanes"] if la["id"] == "b/down")["status"] == "blocked"
    bus.publish(EventTransition(phase=Phase.END, event=blocked.model_copy(update={"active": False})))
    assert segment(board, "ntmk")["level"] == "freeFlow"


def test_learning_free_flow_is_unknown_until_learned() -> None:
    clock = Clock()
    board = board_with(clock)
    live = LaneLive("b", "down", clock.now, 30.0, None, 0.1, 1)
    board.report(camera="b", output=TrafficOutput([], [], [], [live]))
    assert segment(board, "ntmk")["level"] == "unknown"


def test_feed_publishes_only_changes_and_etag_tracks_the_body() -> None:
    clock = Clock()
    board = board_with(clock)
    sub = board.feed.subscribe()
    report(board, clock, "a", up=40.0)
    report(board, clock, "b", up=40.0, down=40.0)
    first = board.tick()
    assert sub.get_nowait().value is first
    clock.now += 1
    report(board, clock, "a", up=40.0)
    report(board, clock, "b", up=40.0, down=40.0)
    second = board.tick()
    assert sub.get_nowait() is None  # same levels and speeds: nothing new for streams
    assert second.etag != first.etag or second.body == first.body
    doc = json.loads(second.body)
    assert {s["id"] for s in doc["segments"]} == {"dbp", "ntmk"}
    assert "track" not in second.body.decode()  # nothing about individual vehicles


def test_segments_must_name_existing_lanes() -> None:
    config = TrafficConfig.model_validate({"segments": [{"id": "x", "name": "X", "lanes": ["a/nope"]}]})
    with pytest.raises(ValueError, match="a/nope"):
        TrafficBoard(config, {"a": ["up"]}, TZ)


@settings(max_examples=50, deadline=None)
@given(ratios=st.lists(st.floats(0.0, 1.5), min_size=2, max_size=200), hold=st.floats(1.0, 20.0))
def test_property_levels_change_at_most_once_per_hold(ratios: list[float], hold: float) -> None:
    """Whatever the readings (one a second), a known level lasts at least ``hold_s`` before it changes."""
    h = LevelHysteresis(CongestionConfig(hold_s=hold))
    changes = []
    last = None
    for t, ratio in enumerate(ratios):
        level = h.update(ratio, float(t))
        if level is not last:
            changes.append(t)
            last = level
    assert all(b - a >= hold for a, b in itertools.pairwise(changes))


@settings(max_examples=50, deadline=None)
@given(ratio=st.floats(0.0, 1.5))
def test_property_a_steady_reading_settles_on_its_own_level(ratio: float) -> None:
    c = CongestionConfig(hold_s=3, hysteresis=0.05)
    h = LevelHysteresis(c)
    h.update(1.0 if ratio < 0.5 else 0.0, 0.0)  # start from the far side
    for t in range(1, 10):
        h.update(ratio, float(t))
    # Within the hysteresis band of a threshold either neighbour is allowed; otherwise its own level.
    near = any(abs(ratio - x) <= c.hysteresis for x in (c.heavy_below, c.congested_below, c.stationary_below))
    assert h.level is classify(ratio, c) or near


def test_a_closing_camera_hands_over_its_minutes_without_looking_alive() -> None:
    clock = Clock()
    board = board_with(clock)
    report(board, clock, "b", up=40.0, down=40.0)
    clock.now += 10  # silent for longer than stale_after_s
    minute = LaneMinute("b", "down", datetime(2024, 5, 1, 19, 0, tzinfo=TZ), {"car": {"forward": 3}}, 3,
                        41.0, 45.0, 0.2, 60.0, 0, 0)  # fmt: skip
    board.report(camera="b", output=TrafficOutput([], [], [minute], []))
    state = board.tick()
    assert next(s for s in state.segments() if s["id"] == "ntmk")["level"] == "unknown"
    lane = next(la for la in state.document["lanes"] if la["id"] == "b/down")
    assert lane["last_minute"] is None  # not shown while the camera is unhealthy
    report(board, clock, "b", up=40.0, down=40.0)  # frames again
    lane = next(la for la in board.tick().document["lanes"] if la["id"] == "b/down")
    assert lane["last_minute"]["counts"] == {"car": {"forward": 3}} and lane["last_minute"]["vehicles"] == 3
