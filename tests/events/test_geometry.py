from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from events.geometry import (
    Anchor,
    anchor_points,
    line_coordinates,
    points_in_polygon,
    polygon_area,
    polygon_is_simple,
)

coord = st.floats(min_value=-2000, max_value=2000, allow_nan=False, allow_infinity=False)


def _segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip(((points - a) @ ab) / max(float(ab @ ab), 1e-12), 0.0, 1.0)
    return np.hypot(*(points - (a + t[:, None] * ab)).T)


def _boundary_distance(points: np.ndarray, poly: np.ndarray) -> np.ndarray:
    return np.min(
        [_segment_distance(points, poly[i], poly[(i + 1) % len(poly)]) for i in range(len(poly))], axis=0
    )


def _in_triangle(p: tuple[float, float], a: np.ndarray, b: np.ndarray, c: np.ndarray) -> bool:
    def cross(o: np.ndarray, u: np.ndarray) -> float:
        return (u[0] - o[0]) * (p[1] - o[1]) - (u[1] - o[1]) * (p[0] - o[0])

    # Closed triangles (with a rounding margin): the fan's inner edges, centre
    # to vertex, are inside the polygon.
    eps = 1e-9 * (1 + max(abs(v) for v in (*p, *a, *b, *c))) ** 2
    d1, d2, d3 = cross(a, b), cross(b, c), cross(c, a)
    return (d1 >= -eps and d2 >= -eps and d3 >= -eps) or (d1 <= eps and d2 <= eps and d3 <= eps)


@st.composite
def star_polygons(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """A polygon star-shaped around its centre: vertices by increasing angle, gaps under pi."""
    n = draw(st.integers(3, 12))
    cx, cy = draw(coord), draw(coord)
    angles = np.sort(
        np.array(draw(st.lists(st.floats(0, 2 * math.pi - 1e-3), min_size=n, max_size=n, unique=True)))
    )
    gaps = np.diff(np.concatenate([angles, [angles[0] + 2 * math.pi]]))
    assume(gaps.max() < math.pi - 0.05 and gaps.min() > 1e-2)
    radii = np.array(draw(st.lists(st.floats(5, 800), min_size=n, max_size=n)))
    poly = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
    return poly, np.array([cx, cy])


@settings(max_examples=150, deadline=None)
@given(star_polygons(), st.lists(st.tuples(coord, coord), min_size=1, max_size=40))
def test_point_in_polygon_matches_fan_triangulation(shape: tuple[np.ndarray, np.ndarray], pts: list) -> None:
    poly, centre = shape
    points = np.array(pts, dtype=np.float64)
    # Add points certainly near the polygon so both answers are exercised.
    points = np.concatenate([points, centre[None, :], (poly + centre) / 2])
    far = _boundary_distance(points, poly) > 1e-3 * (1 + np.abs(points).max())
    expected = np.array(
        [
            any(_in_triangle(tuple(p), centre, poly[i], poly[(i + 1) % len(poly)]) for i in range(len(poly)))
            for p in points
        ]
    )
    got = points_in_polygon(points, poly)
    assert got.shape == (len(points),)
    np.testing.assert_array_equal(got[far], expected[far])


@settings(max_examples=100, deadline=None)
@given(star_polygons(), coord, coord)
def test_point_in_polygon_is_translation_invariant(
    shape: tuple[np.ndarray, np.ndarray], dx: float, dy: float
) -> None:
    poly, centre = shape
    rng = np.random.default_rng(0)
    points = centre + rng.uniform(-900, 900, size=(50, 2))
    points = points[_boundary_distance(points, poly) > 1e-3]
    shift = np.array([dx, dy])
    np.testing.assert_array_equal(
        points_in_polygon(points, poly), points_in_polygon(points + shift, poly + shift)
    )


def test_point_in_polygon_concave_and_edges() -> None:
    # A "U": the notch between the arms is outside.
    u_shape = np.array([[0, 0], [30, 0], [30, 30], [20, 30], [20, 10], [10, 10], [10, 30], [0, 30]], float)
    pts = np.array([[5, 20], [15, 20], [25, 20], [15, 5], [-1, 5], [31, 5]], float)
    np.testing.assert_array_equal(points_in_polygon(pts, u_shape), [True, False, True, True, False, False])
    assert points_in_polygon(np.zeros((0, 2)), u_shape).shape == (0,)
    # A point on the edge shared by two adjacent squares falls in exactly one.
    left = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float)
    right = left.copy()
    right[:, 0] += 10
    on_edge = np.array([[10, 5], [10, 0.5], [10, 9.5]])
    assert (points_in_polygon(on_edge, left) ^ points_in_polygon(on_edge, right)).all()


@settings(max_examples=200, deadline=None)
@given(coord, coord, coord, coord, coord, coord)
def test_line_coordinates_side_and_position(
    ax: float, ay: float, bx: float, by: float, px: float, py: float
) -> None:
    a, b = np.array([ax, ay]), np.array([bx, by])
    length = float(np.hypot(*(b - a)))
    assume(length > 1e-3)
    u, s = line_coordinates(np.array([[px, py]]), a, b)
    # The foot of the perpendicular plus s times the right-hand unit normal gives the point back.
    d = (b - a) / length
    right = np.array([-d[1], d[0]])  # on screen (y down), rotating the direction clockwise
    np.testing.assert_allclose(
        a + u[0] * d + s[0] * right, [px, py], atol=1e-6 * (1 + abs(px) + abs(py) + length)
    )
    # Reversing the line flips the side and mirrors the position.
    u2, s2 = line_coordinates(np.array([[px, py]]), b, a)
    np.testing.assert_allclose(s2, -s, atol=1e-6 * (1 + abs(s[0])))
    np.testing.assert_allclose(u2, length - u, atol=1e-6 * (1 + length + abs(u[0])))


def test_right_hand_side_is_below_a_left_to_right_line() -> None:
    u, s = line_coordinates(np.array([[50, 150], [50, 50], [-10, 100]]), (0, 100), (200, 100))
    np.testing.assert_allclose(s, [50, -50, 0])
    np.testing.assert_allclose(u, [50, 50, -10])
    with pytest.raises(ValueError):
        line_coordinates(np.zeros((1, 2)), (3, 3), (3, 3))


def test_anchor_points() -> None:
    xyxy = np.array([[10, 20, 30, 60]], dtype=np.float32)
    expected = {
        Anchor.CENTER: (20, 40),
        Anchor.BOTTOM_CENTER: (20, 60),
        Anchor.TOP_CENTER: (20, 20),
        Anchor.CENTER_LEFT: (10, 40),
        Anchor.CENTER_RIGHT: (30, 40),
        Anchor.TOP_LEFT: (10, 20),
        Anchor.TOP_RIGHT: (30, 20),
        Anchor.BOTTOM_LEFT: (10, 60),
        Anchor.BOTTOM_RIGHT: (30, 60),
    }
    for anchor, point in expected.items():
        np.testing.assert_allclose(anchor_points(xyxy, anchor), [point])
    assert anchor_points(np.zeros((0, 4)), "center").shape == (0, 2)


def test_polygon_checks() -> None:
    square = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float)
    assert polygon_area(square) == 100
    assert polygon_is_simple(square)
    bowtie = np.array([[0, 0], [10, 10], [10, 0], [0, 10]], float)
    assert not polygon_is_simple(bowtie)
    # Collinear edges doubling back over each other.
    spike = np.array([[0, 0], [10, 0], [5, 0], [5, 5]], float)
    assert not polygon_is_simple(spike)
    assert polygon_is_simple(np.array([[0, 0], [10, 0], [5, 5]], float))


@settings(max_examples=100, deadline=None)
@given(star_polygons())
def test_star_polygons_are_simple(shape: tuple[np.ndarray, np.ndarray]) -> None:
    assert polygon_is_simple(shape[0])
