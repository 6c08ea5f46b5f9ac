"""Per-lane statistics from scripted vehicles: counts, speeds, occupancy, wrong-way and stopped events."""

from __future__ import annotations

from collections import Counter
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from events.lanes import CameraTraffic, TrafficOutput
from events.model import EventType, Phase
from events.traffic_config import CongestionConfig
from tests.events.traffic_support import LANE_DOWN, Vehicle, camera_config, detections, frame, px

FPS = 5.0
TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def run(
    traffic: CameraTraffic, vehicles: list[Vehicle], seconds: float, start: int = 0
) -> list[TrafficOutput]:
    """Move the vehicles at constant speed, keep those on the road (0..60 m), one output per frame."""
    outs = []
    for i in range(start, start + int(seconds * FPS)):
        on_road = [v for v in vehicles if 0.0 <= v.y <= 60.0]
        outs.append(traffic.process(frame("cam", i, FPS), detections(on_road)))
        for v in vehicles:
            v.y += v.vy / FPS
    return outs


def test_counts_speeds_and_direction_per_lane() -> None:
    traffic = CameraTraffic("cam", camera_config(), CongestionConfig(), TZ)
    cars = [
        Vehicle(1, "car", 2.0, 1.0, 36 / 3.6),  # up at 36 km/h
        Vehicle(2, "car", 2.0, -20.0, 54 / 3.6),  # up at 54 km/h, later
        Vehicle(3, "motorcycle", 5.5, 59.0, -45 / 3.6),  # down at 45 km/h
    ]
    outs = run(traffic, cars, 20.0)
    closed = traffic.close(outs[-1].live[0].measured_at + 1)
    minutes = {m.lane: m for o in [*outs, closed] for m in o.minutes}
    up, down = minutes["up"], minutes["down"]
    assert up.counts == {"car": {"forward": 2}}
    assert down.counts == {"motorcycle": {"forward": 1}}
    assert up.mean_speed_kmh == pytest.approx(45.0, rel=0.01)
    assert up.p85_speed_kmh == pytest.approx(36 + 0.85 * 18, rel=0.01)
    assert down.mean_speed_kmh == pytest.approx(45.0, rel=0.01)
    # Car 1 is on the lane (2..58 m) for 5.6 s; car 2 is there at the same time (1.5..5.2 s), so the
    # lane is occupied 5.6 s of the 19.8 s observed.
    assert up.occupancy == pytest.approx(5.6 / 19.8, abs=0.015)
    counts: Counter[tuple[str, str, str]] = Counter()
    for c in (c for o in [*outs, closed] for c in o.counts):  # rows are increments (see events.traffic)
        counts[(c.line, c.class_name, c.direction)] += c.count
    assert counts == {("up", "car", "forward"): 2, ("down", "motorcycle", "forward"): 1}
    assert not [t for o in outs for t in o.transitions]


def test_live_speed_of_a_lane() -> None:
    traffic = CameraTraffic("cam", camera_config(), CongestionConfig(window_s=60), TZ)
    outs = run(traffic, [Vehicle(1, "car", 2.0, 5.0, 20 / 3.6)], 4.0)
    up = outs[-1].live[0]
    assert up.lane == "up" and up.vehicles_in_zone == 1 and up.free_flow_kmh == 60
    assert up.speed_kmh == pytest.approx(20.0, rel=0.01)
    assert outs[-1].live[1].speed_kmh is None  # nobody on the other lane


def test_wrong_way_is_one_event_per_vehicle_and_ends_when_it_leaves() -> None:
    traffic = CameraTraffic("cam", camera_config(wrong_way_after_s=1.0), CongestionConfig(), TZ)
    ghost = Vehicle(9, "car", 2.0, 50.0, -30 / 3.6)  # down the "up" lane
    outs = run(traffic, [ghost], 10.0)
    trans = [t for o in outs for t in o.transitions]
    assert [(t.phase, t.event.type, t.event.rule) for t in trans] == [
        (Phase.START, EventType.WRONG_WAY, "up"),
        (Phase.END, EventType.WRONG_WAY, "up"),
    ]
    assert trans[0].event.track_ids == [9] and trans[0].event.id == trans[1].event.id
    assert sum(m.wrong_way for o in outs for m in o.minutes) + traffic.close(0).minutes[0].wrong_way == 1


def test_stopped_vehicle_in_a_no_stopping_zone() -> None:
    config = camera_config(no_stopping=[{"name": "shoulder", "polygon": px(LANE_DOWN)}], stopped_after_s=5.0)
    traffic = CameraTraffic("cam", config, CongestionConfig(), TZ)
    parked = Vehicle(4, "truck", 5.0, 30.0, 0.0)
    passing = Vehicle(5, "car", 5.0, 55.0, -40 / 3.6)
    outs = run(traffic, [parked, passing], 8.0)
    trans = [t for o in outs for t in o.transitions]
    assert [(t.phase, t.event.type, t.event.track_ids) for t in trans] == [
        (Phase.START, EventType.STOPPED_VEHICLE, [4])
    ]
    assert trans[0].event.start_pts == pytest.approx(0.4, abs=0.25)  # stopped since its speed was known
    parked.vy = -10.0  # drives off, the right way
    outs = run(traffic, [parked], 3.0, start=40)
    trans = [t for o in outs for t in o.transitions]
    assert [(t.phase, t.event.type) for t in trans] == [(Phase.END, EventType.STOPPED_VEHICLE)]


def test_a_vehicle_flickering_at_the_border_is_counted_once() -> None:
    traffic = CameraTraffic("cam", camera_config(), CongestionConfig(), TZ)
    car = Vehicle(1, "car", 2.0, 10.0, 5.0)
    outs = []
    for i in range(40):
        seen = [car] if i % 4 else []  # missed every fourth frame
        outs.append(traffic.process(frame("cam", i, FPS), detections(seen)))
        car.y += car.vy / FPS
    closed = traffic.close(0)
    assert sum(c.count for o in [*outs, closed] for c in o.counts) == 1


def test_stream_restart_closes_visits() -> None:
    traffic = CameraTraffic("cam", camera_config(), CongestionConfig(), TZ)
    run(traffic, [Vehicle(1, "car", 2.0, 10.0, 5.0)], 2.0, start=100)
    out = traffic.process(frame("cam", 0, FPS), detections([]))
    assert sum(c.count for c in out.counts) == 1
    assert np.isfinite(out.live[0].measured_at)


def test_free_flow_is_learned_from_quiet_hours() -> None:
    """A lane without a configured free-flow speed learns the 85th percentile of quiet-hour speeds."""
    config = camera_config()
    lanes = [lane.model_copy(update={"free_flow_kmh": None}) for lane in config.lanes]
    config = config.model_copy(update={"lanes": lanes})
    # 19:00 in Ho Chi Minh City is quiet only if the quiet hours say so.
    busy = CameraTraffic(
        "cam", config, CongestionConfig(learn_min_samples=5, quiet_hours=["01:00-02:00"]), TZ
    )
    quiet = CameraTraffic(
        "cam", config, CongestionConfig(learn_min_samples=5, quiet_hours=["18:00-20:00"]), TZ
    )
    for traffic in (busy, quiet):
        # One car a minute: the lane is quiet (occupied less than a tenth of the time).
        cars = [Vehicle(i, "car", 2.0, -(40 + 5 * i) / 3.6 * 60 * i, (40 + 5 * i) / 3.6) for i in range(6)]
        outs = run(traffic, cars, 330.0)
        assert outs[0].live[0].free_flow_kmh is None
    assert busy.process(frame("cam", 1000, FPS), detections([])).live[0].free_flow_kmh is None
    learned = quiet.process(frame("cam", 1000, FPS), detections([])).live[0].free_flow_kmh
    speeds = [40 + 5 * i for i in range(6)]
    assert learned == pytest.approx(float(np.percentile(speeds, 85)), rel=0.01)
