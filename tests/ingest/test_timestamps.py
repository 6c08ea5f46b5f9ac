from __future__ import annotations

import itertools
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.timestamps import TimestampCorrector


def test_trusts_pts_when_it_increases() -> None:
    fix = TimestampCorrector(Fraction(1, 90_000), 25)
    # Decode order dts with B-frames; pts out of the decoder in presentation order.
    out = [fix(pts, dts) for pts, dts in [(0, -3600), (3600, 0), (7200, 3600), (10800, 7200)]]
    assert out == pytest.approx([0.0, 0.04, 0.08, 0.12])


def test_switches_to_dts_when_pts_is_in_decode_order() -> None:
    """AVI with packed B-frames: the pattern PyAV gives for traffic_highway_cctv_320x240_mpeg4.avi."""
    fix = TimestampCorrector(Fraction(1, 25), 25)
    pairs = [(1, 3), (4, 4), (6, 5), (5, 6), (7, 7), (9, 8), (8, 9), (10, 10), (12, 11), (11, 12), (13, 13)]
    out = [fix(pts, dts) for pts, dts in pairs]
    assert fix.faulty_pts > fix.faulty_dts == 0
    # Once pts has failed more often than dts, times follow dts and increase.
    tail = out[4:]
    assert all(b > a for a, b in itertools.pairwise(tail))


def test_missing_timestamps_fall_back_to_frame_interval() -> None:
    fix = TimestampCorrector(Fraction(1, 90_000), 25)
    assert fix(None, None) == 0.0  # index 0 / fps
    assert fix(None, None) == pytest.approx(0.04)
    assert fix(9000, None) == pytest.approx(0.1)
    assert fix(None, None) == pytest.approx(0.14)  # previous + one interval


@given(st.lists(st.one_of(st.none(), st.integers(0, 10**9)), min_size=1, max_size=200))
def test_never_fails_and_returns_finite_seconds(values: list[int | None]) -> None:
    fix = TimestampCorrector(Fraction(1, 1000), 30)
    for v in values:
        t = fix(v, v)
        assert t == t and abs(t) < 1e7
