"""Vectorized plane geometry for rules, in source-frame pixel coordinates (x right, y down).

Every function takes all objects of a frame at once as numpy arrays; none loops
over boxes in Python.

Conventions (all in image coordinates, so "left" and "right" are as seen on screen):

- ``line_coordinates`` returns, for a directed segment start->end, the position
  of each point along the segment (``u``, px from ``start``) and its signed
  perpendicular distance (``s``, px): ``s > 0`` on the right-hand side of
  start->end as seen on screen, ``s < 0`` on its left. For a segment drawn left
  to right, the right-hand side is below it.
- ``points_in_polygon`` uses the even-odd (crossing number) rule with half-open
  edges: a point exactly on an edge may fall either way, but a point on an edge
  shared by two adjacent polygons falls in exactly one of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import numpy as np

PointLike = Sequence[float]


class Anchor(StrEnum):
    """The point of a box that stands for the object (names as in ``supervision.Position``, lower case).

    ``bottom_center`` is the usual choice for objects on the ground: it is where
    feet and wheels touch the ground plane, so it crosses lines and enters zones
    drawn on the ground when the object does.
    """

    CENTER = "center"
    CENTER_LEFT = "center_left"
    CENTER_RIGHT = "center_right"
    TOP_CENTER = "top_center"
    TOP_LEFT = "top_left"
    TOP_RIGHT = "top_right"
    BOTTOM_LEFT = "bottom_left"
    BOTTOM_CENTER = "bottom_center"
    BOTTOM_RIGHT = "bottom_right"


# Each anchor as fractions of the box width and height from its top-left corner.
_ANCHOR_WEIGHTS: dict[Anchor, tuple[float, float]] = {
    Anchor.CENTER: (0.5, 0.5),
    Anchor.CENTER_LEFT: (0.0, 0.5),
    Anchor.CENTER_RIGHT: (1.0, 0.5),
    Anchor.TOP_CENTER: (0.5, 0.0),
    Anchor.TOP_LEFT: (0.0, 0.0),
    Anchor.TOP_RIGHT: (1.0, 0.0),
    Anchor.BOTTOM_LEFT: (0.0, 1.0),
    Anchor.BOTTOM_CENTER: (0.5, 1.0),
    Anchor.BOTTOM_RIGHT: (1.0, 1.0),
}


def anchor_points(xyxy: np.ndarray, anchor: Anchor | str) -> np.ndarray:
    """The anchor point of each box: ``xyxy`` [N, 4] -> [N, 2] float64."""
    wx, wy = _ANCHOR_WEIGHTS[Anchor(anchor)]
    boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    x = boxes[:, 0] + wx * (boxes[:, 2] - boxes[:, 0])
    y = boxes[:, 1] + wy * (boxes[:, 3] - boxes[:, 1])
    return np.stack([x, y], axis=1)


def as_polygon(polygon: Sequence[PointLike] | np.ndarray) -> np.ndarray:
    """Vertices as a float64 [M, 2] array (the closing edge from last to first is implicit)."""
    poly = np.asarray(polygon, dtype=np.float64)
    if poly.ndim != 2 or poly.shape[1] != 2 or len(poly) < 3:
        raise ValueError(f"a polygon needs at least 3 (x, y) vertices, got shape {poly.shape}")
    return poly


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Which points lie inside the polygon: [N, 2] x [M, 2] -> bool [N].

    Crossing-number test broadcast over all points and edges at once (an
    [N, M] array; N objects times M vertices is small for camera zones).
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    poly = as_polygon(polygon)
    if len(pts) == 0:
        return np.zeros(0, dtype=bool)
    x = pts[:, 0:1]
    y = pts[:, 1:2]
    x1, y1 = poly[:, 0], poly[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    # An edge counts when it straddles the horizontal through the point
    # (half-open in y, so a ray through a vertex counts it once) and the
    # crossing lies to the right of the point.
    straddles = (y1 > y) != (y2 > y)
    dy = np.where(y2 == y1, 1.0, y2 - y1)  # never used where the edge is horizontal
    x_cross = x1 + (y - y1) * (x2 - x1) / dy
    crossings = np.count_nonzero(straddles & (x < x_cross), axis=1)
    return (crossings % 2) == 1


def line_coordinates(points: np.ndarray, start: PointLike, end: PointLike) -> tuple[np.ndarray, np.ndarray]:
    """Position of points relative to the directed segment start->end.

    Returns ``(u, s)``, each [N] float64: ``u`` is the distance along the
    segment from ``start`` of the point's projection (the point is abreast of
    the segment when ``0 <= u <= length``), ``s`` the signed perpendicular
    distance, positive on the right-hand side of start->end as seen on screen.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    a = np.asarray(start, dtype=np.float64)
    d = np.asarray(end, dtype=np.float64) - a
    length = float(np.hypot(d[0], d[1]))
    if length == 0.0:
        raise ValueError("a line needs two distinct points")
    rel = pts - a
    u = (rel[:, 0] * d[0] + rel[:, 1] * d[1]) / length
    # With y pointing down, a positive cross product is clockwise on screen,
    # i.e. the right-hand side of the direction of travel start->end.
    s = (d[0] * rel[:, 1] - d[1] * rel[:, 0]) / length
    return u, s


def polygon_area(polygon: np.ndarray) -> float:
    """Unsigned area (shoelace formula)."""
    poly = as_polygon(polygon)
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def polygon_is_simple(polygon: np.ndarray) -> bool:
    """True when no two non-adjacent edges touch or cross (so inside/outside is unambiguous)."""
    poly = as_polygon(polygon)
    m = len(poly)
    p, r = poly, np.roll(poly, -1, axis=0) - poly  # edge i runs from p[i] to p[i] + r[i]
    i, j = np.triu_indices(m, k=1)
    # Adjacent edges share a vertex by construction: only test the others.
    keep = (j != i + 1) & ~((i == 0) & (j == m - 1))
    i, j = i[keep], j[keep]
    if len(i) == 0:
        return True

    def cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]

    pi, ri, pj, rj = p[i], r[i], p[j], r[j]
    # Orientation tests: segments intersect (touching included) when each
    # one's endpoints are not strictly on the same side of the other.
    d1 = cross(ri, pj - pi)
    d2 = cross(ri, pj + rj - pi)
    d3 = cross(rj, pi - pj)
    d4 = cross(rj, pi + ri - pj)
    proper = (d1 * d2 <= 0) & (d3 * d4 <= 0)
    # Collinear edges pass the test above without overlapping: check their extents.
    collinear = (d1 == 0) & (d2 == 0)
    if collinear.any():
        t0 = np.einsum("ij,ij->i", pj - pi, ri) / np.einsum("ij,ij->i", ri, ri)
        t1 = np.einsum("ij,ij->i", pj + rj - pi, ri) / np.einsum("ij,ij->i", ri, ri)
        overlap = (np.maximum(t0, t1) >= 0) & (np.minimum(t0, t1) <= 1)
        proper = np.where(collinear, overlap, proper)
    return not bool(proper.any())
