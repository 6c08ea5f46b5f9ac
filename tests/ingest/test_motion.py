"""Motion gate: still pictures stay still, moving things move, and the skip rule keeps tracks fed."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ingest import VideoSource
from ingest.motion import GateDecision, MotionConfig, MotionGate

DETECT, SKIP, REUSE = GateDecision.DETECT, GateDecision.SKIP, GateDecision.REUSE

H, W = 360, 640


def scene(seed: int = 0) -> np.ndarray:
    """A textured BGR picture (smoothed noise), like a real scene rather than a flat one."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (H // 8, W // 8, 3), dtype=np.uint8)
    return cv2.resize(img, (W, H), interpolation=cv2.INTER_CUBIC)


def with_box(img: np.ndarray, x: int, y: int, size: int = 60, colour: int = 255) -> np.ndarray:
    out = img.copy()
    out[y : y + size, x : x + size] = colour
    return out


def test_first_frame_counts_as_motion_and_a_still_one_does_not() -> None:
    gate = MotionGate()
    base = scene()
    assert gate.measure(base, 0.0).motion
    r = gate.measure(base.copy(), 0.2)
    assert not r.motion and r.changed == 0.0


def test_a_moving_object_is_motion() -> None:
    gate = MotionGate()
    base = scene()
    gate.measure(with_box(base, 100, 100), 0.0)
    r = gate.measure(with_box(base, 160, 100), 0.2)
    assert r.motion and r.changed > MotionConfig().min_area


def test_sensor_noise_is_not_motion() -> None:
    gate = MotionGate()
    base = scene().astype(np.int16)
    rng = np.random.default_rng(1)
    for i in range(10):
        noisy = np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8)
        r = gate.measure(noisy, 0.2 * i)
        assert i == 0 or not r.motion, (i, r)


def test_a_change_smaller_than_min_area_is_not_motion() -> None:
    gate = MotionGate()
    base = scene()
    gate.measure(base, 0.0)
    # 8x8 source pixels: one work pixel of 160x90, 0.07 % of the picture.
    r = gate.measure(with_box(base, 300, 200, size=8, colour=0), 0.2)
    assert 0 < r.changed < MotionConfig().min_area and not r.motion


def test_masked_changes_are_ignored() -> None:
    mask = [[(0.0, 0.0), (200.0, 0.0), (200.0, 120.0), (0.0, 120.0)]]  # top-left: an on-screen clock
    gate = MotionGate(MotionConfig(mask=mask))
    base = scene()
    gate.measure(base, 0.0)
    assert not gate.measure(with_box(base, 40, 20), 0.2).motion
    assert gate.measure(with_box(base, 400, 200), 0.4).motion


def test_grey_planes_are_accepted() -> None:
    gate = MotionGate()
    grey = cv2.cvtColor(scene(), cv2.COLOR_BGR2GRAY)
    assert gate.measure(grey, 0.0).motion
    assert not gate.measure(grey.copy(), 0.2).motion
    assert gate.measure(with_box(grey[..., None], 100, 100)[..., 0], 0.4).motion


def test_reference_is_the_picture_compare_s_earlier() -> None:
    """At 30 frames/s, an object that appears and stays is motion for compare_s, then not."""
    gate = MotionGate(MotionConfig(compare_s=0.2))
    base, shown = scene(), with_box(scene(), 200, 150)
    verdicts = {}
    for i in range(30):
        t = i / 30
        verdicts[i] = gate.measure(shown if t >= 0.3 else base, t).motion
    assert not any(verdicts[i] for i in range(1, 9))  # still before it appears
    assert all(verdicts[i] for i in range(9, 15))  # compared with pictures from before 0.3 s
    assert not any(verdicts[i] for i in range(16, 30))  # 0.2 s later the reference shows it too


def test_small_motion_between_close_frames_accumulates_over_compare_s() -> None:
    """A slow object (2 px per frame at 30 fps) is seen against the picture 0.2 s back."""
    base = scene()
    slow, previous_only = MotionGate(MotionConfig()), MotionGate(MotionConfig(compare_s=0.0))
    seen_slow = seen_prev = 0
    for i in range(30):
        img = with_box(base, 100 + 2 * i, 150, size=20, colour=0)
        seen_slow += slow.measure(img, i / 30).motion
        seen_prev += previous_only.measure(img, i / 30).motion
    assert seen_slow > 20
    assert seen_prev < seen_slow


def test_time_going_back_and_size_changes_restart_the_reference() -> None:
    gate = MotionGate()
    base = scene()
    gate.measure(base, 10.0)
    assert not gate.measure(base, 10.2).motion
    assert gate.measure(base, 1.0).motion  # stream restarted
    assert gate.measure(cv2.resize(base, (320, 180)), 1.2).motion  # new resolution
    assert not gate.measure(cv2.resize(base, (320, 180)), 1.4).motion


def test_decide_skips_only_without_motion_and_without_tracks() -> None:
    gate = MotionGate()
    base = scene()
    assert gate.decide(base, 0.0, active_tracks=0) is DETECT  # first frame: look
    assert gate.decide(base, 0.2, active_tracks=0) is SKIP  # still, nothing tracked
    assert gate.decide(base, 0.4, active_tracks=1) is DETECT  # still but a track is held: never skip
    assert gate.decide(with_box(base, 50, 50), 0.6, active_tracks=0) is DETECT  # motion
    assert gate.decide(with_box(base, 50, 50), 0.8, active_tracks=0) is SKIP
    assert (gate.stats.frames, gate.stats.detected, gate.stats.skipped, gate.stats.reused) == (5, 3, 2, 0)
    assert gate.stats.skipped_fraction == pytest.approx(0.4)


def test_max_skip_s_forces_a_look_now_and_then() -> None:
    gate = MotionGate(MotionConfig(max_skip_s=1.0))
    base = scene()
    decisions = [gate.decide(base, i * 0.2, active_tracks=0) for i in range(16)]
    assert [i for i, d in enumerate(decisions) if d is DETECT] == [0, 5, 10, 15]


def test_reuse_mode_reuses_detections_of_still_tracked_frames_and_refreshes_them() -> None:
    gate = MotionGate(MotionConfig(still_tracks="reuse"))
    base = scene()
    decisions = [gate.decide(base, i * 0.2, active_tracks=1) for i in range(12)]
    # Refreshed every 2 s (REUSE_REFRESH_S) while nothing moves; reused in between.
    assert [i for i, d in enumerate(decisions) if d is DETECT] == [0, 10]
    assert all(d is REUSE for i, d in enumerate(decisions) if i not in (0, 10))
    assert gate.decide(base, 2.4, active_tracks=0) is SKIP  # no track: nothing to reuse
    assert gate.decide(with_box(base, 50, 50), 2.6, active_tracks=1) is DETECT  # motion: look
    assert gate.stats.reused == 10 and gate.stats.skipped_fraction == pytest.approx(11 / 14)


def test_reset_makes_the_next_frame_motion() -> None:
    gate = MotionGate()
    base = scene()
    gate.decide(base, 0.0, 0)
    assert gate.decide(base, 0.2, 0) is SKIP
    gate.reset()
    assert gate.decide(base, 0.4, 0) is DETECT


def test_config_is_validated() -> None:
    with pytest.raises(ValidationError, match="mask polygon 0 needs at least 3 points"):
        MotionConfig(mask=[[(0, 0), (1, 1)]])
    with pytest.raises(ValidationError, match="extra"):
        MotionConfig(threshold=3)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        MotionConfig(min_area=2.0)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    width=st.integers(16, 400),
    height=st.integers(16, 300),
    dt=st.floats(0.0, 2.0),
)
def test_an_unchanged_picture_is_never_motion(seed: int, width: int, height: int, dt: float) -> None:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    gate = MotionGate()
    gate.measure(img, 5.0)
    r = gate.measure(img.copy(), 5.0 + dt)
    assert r.changed == 0.0 and not r.motion


@pytest.mark.slow
@pytest.mark.parametrize(
    ("clip", "low", "high"),
    [
        ("security_residential_lane_night_1280x720_h264.mp4", 0.0, 0.1),  # nothing happens
        ("traffic_intersection_cctv_640x480_h264.mp4", 0.9, 1.0),  # traffic all the time
    ],
)
def test_motion_share_on_real_footage(footage_dir: Path, clip: str, low: float, high: float) -> None:
    gate = MotionGate()
    verdicts = []
    for frame in VideoSource(footage_dir / clip, analysis_fps=5):
        if frame.pts > 12:
            break
        verdicts.append(gate.measure(frame.image, frame.pts).motion)
    share = float(np.mean(verdicts[1:]))
    assert low <= share <= high, share
