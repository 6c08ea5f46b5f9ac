"""Speed from a known homography: synthetic trajectories projected into the picture come back within 1 %."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.speed import MS_TO_KMH, CalibrationError, RoadPlane, SpeedEstimator

# A strongly oblique view: a 60 m x 7.5 m stretch of road seen as a trapezoid.
IMAGE = [(100.0, 460.0), (290.0, 120.0), (350.0, 120.0), (600.0, 460.0)]
ROAD = [(0.0, 0.0), (0.0, 60.0), (7.5, 60.0), (7.5, 0.0)]


def drive(plane: RoadPlane, speed_kmh: float, heading: float, fps: float, seconds: float, start=(2.0, 5.0)):
    """Pixels of a vehicle driving straight at ``speed_kmh``, one row per frame."""
    t = np.arange(0.0, seconds, 1.0 / fps)
    v = speed_kmh / MS_TO_KMH
    world = np.column_stack((start[0] + v * math.sin(heading) * t, start[1] + v * math.cos(heading) * t))
    return t, plane.to_image(world)


def last_speed(est: SpeedEstimator, t: np.ndarray, px: np.ndarray, tid: int = 7) -> float:
    speed = math.nan
    for ti, p in zip(t, px, strict=True):
        speed = float(est.update(np.array([tid]), p[None, :], float(ti)).speed_kmh[0])
    return speed


def test_round_trip_of_the_calibration_points() -> None:
    plane = RoadPlane(IMAGE, ROAD)
    assert np.allclose(plane.to_world(np.array(IMAGE)), ROAD, atol=1e-6)
    assert np.allclose(plane.to_image(np.array(ROAD)), IMAGE, atol=1e-6)


def test_degenerate_calibration_is_refused() -> None:
    with pytest.raises(CalibrationError, match="on one line"):
        RoadPlane([(0, 0), (1, 1), (2, 2), (0, 5)], ROAD)
    with pytest.raises(CalibrationError, match="exactly four"):
        RoadPlane(IMAGE[:3], ROAD[:3])


def test_speed_along_the_road_within_one_percent() -> None:
    plane = RoadPlane(IMAGE, ROAD)
    t, px = drive(plane, 72.0, 0.0, fps=5, seconds=2.0)
    assert last_speed(SpeedEstimator(plane), t, px) == pytest.approx(72.0, rel=0.01)


def test_no_speed_before_half_a_second_of_positions() -> None:
    plane = RoadPlane(IMAGE, ROAD)
    est = SpeedEstimator(plane, window_s=1.0, min_span_s=0.5)
    t, px = drive(plane, 50.0, 0.0, fps=10, seconds=0.45)
    speeds = [
        float(est.update(np.array([1]), p[None, :], float(ti)).speed_kmh[0])
        for ti, p in zip(t, px, strict=True)
    ]
    assert all(math.isnan(s) for s in speeds)


def test_a_bad_box_is_rejected_and_barely_moves_the_speed() -> None:
    plane = RoadPlane(IMAGE, ROAD)
    t, px = drive(plane, 60.0, 0.0, fps=10, seconds=2.0)
    px = px.copy()
    px[12] += (0.0, -80.0)  # one box jumps tens of metres up the road
    px[15] += (3.0, 2.0)  # another is a few pixels off
    assert last_speed(SpeedEstimator(plane), t, px) == pytest.approx(60.0, rel=0.01)


def test_an_id_switch_restarts_the_history() -> None:
    plane = RoadPlane(IMAGE, ROAD)
    est = SpeedEstimator(plane)
    t, a = drive(plane, 40.0, 0.0, fps=10, seconds=1.5, start=(2.0, 5.0))
    _, b = drive(plane, 40.0, 0.0, fps=10, seconds=1.5, start=(2.0, 45.0))
    last_speed(est, t, a)
    # The same id now sits on another vehicle 40 m further: no absurd speed, the right one soon after.
    speeds = [
        float(est.update(np.array([7]), p[None, :], 1.5 + float(ti)).speed_kmh[0])
        for ti, p in zip(t, b, strict=True)
    ]
    assert all(math.isnan(s) or s < 250 for s in speeds)
    assert speeds[-1] == pytest.approx(40.0, rel=0.01)


def test_several_tracks_at_once_are_kept_apart() -> None:
    plane = RoadPlane(IMAGE, ROAD)
    est = SpeedEstimator(plane)
    t, a = drive(plane, 30.0, 0.0, fps=5, seconds=1.6, start=(1.5, 3.0))
    _, b = drive(plane, 90.0, math.pi, fps=5, seconds=1.6, start=(6.0, 55.0))
    for ti, pa, pb in zip(t, a, b, strict=True):
        out = est.update(np.array([1, 2]), np.vstack([pa, pb]), float(ti))
    assert out.speed_kmh == pytest.approx([30.0, 90.0], rel=0.01)
    assert out.velocity[1, 1] < 0  # the second drives towards the camera


@settings(max_examples=60, deadline=None)
@given(
    speed=st.floats(3.0, 160.0),
    heading=st.floats(-math.pi, math.pi),
    fps=st.sampled_from([4.0, 5.0, 10.0, 12.5, 25.0, 29.97]),
    x0=st.floats(0.5, 7.0),
    y0=st.floats(10.0, 50.0),
)
def test_property_any_straight_drive_within_one_percent(
    speed: float, heading: float, fps: float, x0: float, y0: float
) -> None:
    plane = RoadPlane(IMAGE, ROAD)
    t, px = drive(plane, speed, heading, fps=fps, seconds=1.2, start=(x0, y0))
    assert last_speed(SpeedEstimator(plane), t, px) == pytest.approx(speed, rel=0.01)


@settings(max_examples=40, deadline=None)
@given(
    quad=st.lists(st.tuples(st.floats(-50, 50), st.floats(-50, 50)), min_size=4, max_size=4),
    points=st.lists(st.tuples(st.floats(0, 7.5), st.floats(0, 60)), min_size=1, max_size=10),
)
def test_property_world_image_round_trip(
    quad: list[tuple[float, float]], points: list[tuple[float, float]]
) -> None:
    image = [(x + dx, y + dy) for (x, y), (dx, dy) in zip(IMAGE, quad, strict=True)]
    try:
        plane = RoadPlane(image, ROAD)
    except CalibrationError:
        return
    world = np.array(points)
    back = plane.to_world(plane.to_image(world))
    assert np.allclose(back, world, atol=1e-6 * (1 + np.abs(world).max()))
