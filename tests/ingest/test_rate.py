from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import RateSelector


def picks(selector: RateSelector, pts: list[float] | np.ndarray) -> list[float]:
    return [float(p) for p in pts if selector.offer(float(p))]


def test_25_to_5_keeps_every_fifth_frame() -> None:
    pts = [i / 25 for i in range(100)]
    assert picks(RateSelector(5), pts) == pytest.approx([i / 25 for i in range(0, 100, 5)])


def test_ntsc_29_97_to_5_keeps_five_per_second_without_drift() -> None:
    pts = [i * 1001 / 30000 for i in range(30 * 60 * 10)]  # ten minutes
    picked = picks(RateSelector(5), pts)
    duration = len(pts) * 1001 / 30000
    assert abs(len(picked) - duration * 5) <= 1
    gaps = np.diff(picked)
    # Each analysed frame is the first at or after its slot (5.994 source frames per slot):
    # gaps of 6 source frames, and 5 where the slower source falls a frame behind the grid.
    assert set(np.round(gaps / (1001 / 30000)).astype(int)) == {5, 6}


def test_non_divisible_rate_is_exact_on_average() -> None:
    # 25 fps -> 7 fps: counting every 3rd or 4th frame would give 8.3 or 6.25 fps.
    pts = [i / 25 for i in range(25 * 60)]
    assert abs(len(picks(RateSelector(7), pts)) - 60 * 7) <= 1


def test_none_keeps_every_frame_and_faster_target_keeps_every_frame() -> None:
    pts = [i / 10 for i in range(50)]
    assert picks(RateSelector(None), pts) == pts
    assert picks(RateSelector(30), pts) == pts


def test_gap_in_stream_skips_missed_slots_instead_of_bursting() -> None:
    pts = [i / 25 for i in range(25)] + [10 + i / 25 for i in range(25)]
    picked = picks(RateSelector(5), pts)
    after_gap = [p for p in picked if p >= 10]
    assert after_gap == pytest.approx([10.0, 10.2, 10.4, 10.6, 10.8])


def test_backward_jump_restarts_the_grid_and_small_jitter_is_ignored() -> None:
    sel = RateSelector(5)
    assert picks(sel, [100 + i / 25 for i in range(25)]) == pytest.approx([100, 100.2, 100.4, 100.6, 100.8])
    # A new recording starting at 0: picked at once, grid restarts there.
    assert picks(sel, [i / 25 for i in range(10)]) == pytest.approx([0.0, 0.2])
    sel = RateSelector(5)
    assert picks(sel, [0.0, 0.1, 0.05, 0.19999, 0.21]) == [0.0, 0.19999]


def test_reset_and_next_due() -> None:
    sel = RateSelector(4)
    assert sel.next_due is None
    assert sel.offer(3.0)
    assert sel.next_due == pytest.approx(3.25)
    sel.reset()
    assert sel.offer(0.5) and sel.next_due == pytest.approx(0.75)


@pytest.mark.parametrize("fps", [0, -1, math.inf, math.nan])
def test_rejects_bad_rates(fps: float) -> None:
    with pytest.raises(ValueError, match="analysis fps"):
        RateSelector(fps)


@settings(max_examples=300, deadline=None)
@given(
    source_fps=st.floats(1.0, 120.0),
    analysis_fps=st.floats(0.1, 30.0),
    duration=st.floats(1.0, 120.0),
    jitter=st.floats(0.0, 0.45),
    offset=st.floats(-5.0, 1000.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_selector_properties_on_jittered_constant_rate(
    source_fps: float, analysis_fps: float, duration: float, jitter: float, offset: float, seed: int
) -> None:
    """Any source rate, analysis rate and timestamp jitter (up to 45 % of a frame interval)."""
    n = max(1, int(duration * source_fps))
    rng = np.random.default_rng(seed)
    pts = offset + np.arange(n) / source_fps + rng.uniform(-jitter, jitter, n) / source_fps
    picked = picks(RateSelector(analysis_fps), pts)
    span = n / source_fps

    assert 1 <= len(picked) <= n
    assert all(b > a for a, b in itertools.pairwise(picked)), "picked pts must increase"
    assert len(picked) <= span * analysis_fps + 1
    gaps = np.diff(pts)
    if source_fps >= analysis_fps and (gaps.size == 0 or gaps.max() <= 1 / analysis_fps - 1e-3):
        # A frame in every analysis slot: the count is the slot count, within one.
        assert abs(len(picked) - span * analysis_fps) <= 1
    if gaps.size and gaps.min() >= 1 / analysis_fps:
        assert len(picked) == n  # source slower than the target: every frame is analysed


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.floats(0.001, 0.5), min_size=1, max_size=400),
    analysis_fps=st.floats(0.5, 30.0),
)
def test_selector_properties_on_variable_rate(gaps: list[float], analysis_fps: float) -> None:
    pts = np.concatenate([[0.0], np.cumsum(gaps)])
    picked = picks(RateSelector(analysis_fps), pts)
    duration = float(pts[-1] - pts[0])
    assert 1 <= len(picked) <= len(pts)
    assert all(b > a for a, b in itertools.pairwise(picked))
    # Never faster than asked: at most one pick per analysis slot.
    assert len(picked) <= duration * analysis_fps + 1.01
    # Never slower than the source allows: every slot holding a frame yields exactly one pick.
    slots = {math.floor((p - pts[0] + 1e-4) * analysis_fps) for p in pts}
    assert len(picked) == len(slots)


@given(st.floats(0.1, 30.0))
def test_picks_nothing_twice_for_repeated_timestamps(fps: float) -> None:
    sel = RateSelector(fps)
    assert sel.offer(1.0)
    assert not sel.offer(1.0)
    assert not sel.offer(1.0 + 0.5 / fps)
