"""Camera health: faults applied to real footage fire in time and clear, clean footage stays quiet.

The real-footage tests decode each clip once (every few frames, PyAV) and feed
the same frames to a clean monitor and to one monitor per fault, with the fault
applied to the decoded pictures during a window. Run with ``-s`` to see the
measured statistics per clip.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ingest.health import CameraHealthMonitor, HealthChange, HealthCondition, HealthConfig, HealthMeasures
from ingest.health.measures import LIMITED_TO_FULL_LUT, PhaseCorrelator, medians, to_work
from ingest.health.timer import ConditionTimer, Transition

FROZEN, BLOCKED, BLURRED, MOVED = (
    HealthCondition.FROZEN,
    HealthCondition.BLOCKED,
    HealthCondition.BLURRED,
    HealthCondition.MOVED,
)
SLACK_S = 1.0  # detection may land up to two 2 Hz samples after the exact time

# --- real footage ---------------------------------------------------------------------------------

Fault = Callable[[np.ndarray, float], np.ndarray]


def black(img: np.ndarray, pts: float) -> np.ndarray:
    return np.zeros_like(img)


def hand(img: np.ndarray, pts: float) -> np.ndarray:
    """A dark, smooth, skin-coloured blob over ~90% of the picture, as a hand on the lens."""
    h, w = img.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (w // 2, h // 2), (int(w * 0.6), int(h * 0.6)), 0, 0, 360, 255, -1)
    ramp = 40 + 25 * np.linspace(0, 1, w, dtype=np.float32)[None, :] + np.zeros((h, 1), np.float32)
    blob = np.dstack([ramp * 0.7, ramp * 0.85, ramp]).astype(np.uint8)
    return np.where(mask[:, :, None] > 0, blob, img)


def blur(img: np.ndarray, pts: float) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), img.shape[1] / 160)  # sigma 4 px at 640, 8 px at 1280


def shift(img: np.ndarray, pts: float) -> np.ndarray:
    return np.roll(img, 40, axis=1)


def rotate(img: np.ndarray, pts: float) -> np.ndarray:
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 10, 1.0)
    return cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT101)


class Repeat:
    """The same frame re-sent, with a live clock overlay still ticking over it."""

    def __init__(self) -> None:
        self.still: np.ndarray | None = None

    def __call__(self, img: np.ndarray, pts: float) -> np.ndarray:
        if self.still is None:
            self.still = img.copy()
        out = self.still.copy()
        cv2.putText(out, f"{pts:09.2f}", (8, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
        return out


FAULTS: dict[str, tuple[HealthCondition, Callable[[], Fault]]] = {
    "black": (BLOCKED, lambda: black),
    "hand": (BLOCKED, lambda: hand),
    "blur": (BLURRED, lambda: blur),
    "shift": (MOVED, lambda: shift),
    "rotate": (MOVED, lambda: rotate),
    "repeat": (FROZEN, Repeat),
}

# The plaza clip is 13.6 s: too short for the default timers, so it gets short timers (the
# thresholds stay the defaults) and its faults start right after its 3 s of learning.
SHORT = HealthConfig(
    learn_s=3.0,
    frozen_after_s=5.0,
    blocked_after_s=3.0,
    blurred_after_s=3.0,
    moved_after_s=3.0,
    clear_after_s=2.0,
)


@dataclass(frozen=True)
class Clip:
    file: str
    config: HealthConfig  # for the faulted runs; the clean run always uses the defaults
    onset: float  # fault start (s of stream time), after the reference is learned


CLIPS = {
    "night": Clip("security_residential_lane_night_1280x720_h264.mp4", HealthConfig(), 8.0),
    "plaza": Clip("pedestrians_plaza_overhead_1280x720_h264.mp4", SHORT, 4.0),
    "intersection": Clip("traffic_intersection_cctv_640x480_h264.mp4", HealthConfig(), 8.0),
    "india": Clip("traffic_india_junction_motorbikes_640x360_h264.mp4", HealthConfig(), 8.0),
}


def after_s(config: HealthConfig, cond: HealthCondition) -> float:
    return getattr(config, f"{cond.value}_after_s")


def window(clip: Clip, cond: HealthCondition) -> tuple[float, float]:
    return clip.onset, clip.onset + after_s(clip.config, cond) + 3.0


@dataclass
class ClipRun:
    duration: float = 0.0
    changes: dict[str, list[HealthChange]] = field(default_factory=dict)
    measures: dict[str, list[HealthMeasures]] = field(default_factory=dict)
    cost_ms: list[float] = field(default_factory=list)


def frames(path: Path, step_fps: float) -> Iterator[tuple[float, np.ndarray, np.ndarray]]:
    """(pts, BGR, Y plane) of every few decoded frames, about ``step_fps`` per second."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        every = max(1, round(float(stream.average_rate) / step_fps))
        for i, frame in enumerate(container.decode(stream)):
            if i % every == 0:
                plane = frame.planes[0]
                y = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[: frame.height, : frame.width]
                yield float(frame.time), frame.to_ndarray(format="bgr24"), y


def run_clip(path: Path, clip: Clip) -> ClipRun:
    run = ClipRun()
    monitors = {"clean": CameraHealthMonitor("clean", HealthConfig(), 30.0)}
    luma = {"clean_luma": CameraHealthMonitor("clean_luma", HealthConfig(), 30.0, limited_range=True)}
    luma["black_luma"] = CameraHealthMonitor("black_luma", clip.config, 30.0, limited_range=True)
    faults = {name: make() for name, (_, make) in FAULTS.items()}
    for name in faults:
        monitors[name] = CameraHealthMonitor(name, clip.config, 30.0)
    windows = {name: window(clip, cond) for name, (cond, _) in FAULTS.items()}
    windows["black_luma"] = window(clip, BLOCKED)
    last_needed = max(end for _, end in windows.values()) + clip.config.clear_after_s + 2 * SLACK_S
    for key in [*monitors, *luma]:
        run.changes[key], run.measures[key] = [], []
    for pts, bgr, y in frames(path, 4.0):
        run.duration = pts
        for key, monitor in (*monitors.items(), *luma.items()):
            if key not in ("clean", "clean_luma") and pts > last_needed:
                continue
            lo, hi = windows.get(key, (math.inf, math.inf))
            faulty = lo <= pts < hi
            if key in luma:
                image = np.full_like(y, 16) if faulty else y  # limited-range black is 16
            else:
                image = faults[key](bgr, pts) if faulty else bgr
            started = time.perf_counter()
            run.changes[key] += monitor.update(image, pts)
            if monitor.last is not None and monitor.last.pts == pts:
                if key == "clean":
                    run.cost_ms.append((time.perf_counter() - started) * 1000)
                run.measures[key].append(monitor.last)
    return run


@pytest.fixture(scope="module", params=list(CLIPS))
def clip_run(request: pytest.FixtureRequest, footage_dir: Path) -> tuple[str, Clip, ClipRun]:
    name = request.param
    clip = CLIPS[name]
    run = run_clip(footage_dir / clip.file, clip)
    print_stats(name, clip, run)
    return name, clip, run


MEASURES = ("mean_luma", "luma_std", "blank_fraction", "changed_fraction", "unchanged_s")
MEASURES += ("detail_ratio", "sharpness_ratio", "shift_px", "similarity")


def span(measures: list[HealthMeasures], key: str) -> str:
    values = [v for m in measures if not m.learning and (v := getattr(m, key)) is not None]
    return f"{key}=[{min(values):.3f}, {max(values):.3f}]" if values else f"{key}=-"


def print_stats(name: str, clip: Clip, run: ClipRun) -> None:
    cost = np.array(run.cost_ms)
    print(
        f"\n[{name}] {clip.file}, {run.duration:.1f} s, cost per analysed update (clean, BGR): "
        f"median {np.median(cost):.2f} ms, p95 {np.percentile(cost, 95):.2f} ms"
    )
    print("  clean:", ", ".join(span(run.measures["clean"], k) for k in MEASURES))
    for key in (*FAULTS, "black_luma"):
        lo, hi = window(clip, BLOCKED if key == "black_luma" else FAULTS[key][0])
        during = [m for m in run.measures[key] if lo + 1 <= m.pts < hi]
        print(f"  {key} {lo:.0f}-{hi:.0f} s:", ", ".join(span(during, k) for k in MEASURES))
        for c in run.changes[key]:
            state = "start" if c.active else "clear"
            print(
                f"      {c.condition} {state} at {c.pts:.2f} (since {c.since:.2f}) {c.measure}={c.value:.3f}"
                f" vs {c.threshold:.3f}"
            )


@pytest.mark.slow
def test_clean_footage_raises_nothing(clip_run: tuple[str, Clip, ClipRun]) -> None:
    name, _, run = clip_run
    assert run.changes["clean"] == [], name
    assert run.changes["clean_luma"] == [], name
    measured = run.measures["clean"]
    assert measured and not measured[-1].learning  # the reference was learned, every check ran
    if name != "night":  # the night lane's view is dark: its learned view still has texture
        assert measured[-1].similarity is not None


@pytest.mark.slow
@pytest.mark.parametrize("fault", [*FAULTS, "black_luma"])
def test_fault_fires_in_time_and_clears(clip_run: tuple[str, Clip, ClipRun], fault: str) -> None:
    name, clip, run = clip_run
    cond = BLOCKED if fault == "black_luma" else FAULTS[fault][0]
    lo, hi = window(clip, cond)
    delay = after_s(clip.config, cond)
    changes = run.changes[fault]
    assert {c.condition for c in changes} == {cond}, f"{name}/{fault}: {changes}"
    start = changes[0]
    assert start.active
    # A static scene may have been unchanged since before the repeat began: frozen backdates.
    earliest_onset = lo - (4.0 if cond is FROZEN else 0.0)
    assert earliest_onset <= start.since <= lo + SLACK_S, start
    assert start.pts - start.since >= delay - 1e-6, start
    assert start.pts <= lo + delay + SLACK_S, start
    assert start.value is not None and start.threshold is not None and start.threshold > 0
    if hi + clip.config.clear_after_s + SLACK_S <= run.duration:
        assert len(changes) == 2, f"{name}/{fault}: {changes}"
        clear = changes[1]
        assert not clear.active
        assert hi <= clear.since <= hi + SLACK_S, clear
        assert clear.pts <= hi + clip.config.clear_after_s + SLACK_S, clear
    else:
        assert len(changes) == 1  # the clip ends before the clear is due


@pytest.mark.slow
def test_cost_per_update_is_small(clip_run: tuple[str, Clip, ClipRun]) -> None:
    _, _, run = clip_run
    # A 720p update measures ~2-3 ms here; the bound leaves room for a loaded shared machine.
    assert np.median(run.cost_ms) < 20.0


# --- unit tests -------------------------------------------------------------------------------------


def texture(w: int = 192, h: int = 108, seed: int = 0) -> np.ndarray:
    """A structured BGR picture: smoothed noise plus a few rectangles."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(0, 256, (h, w), dtype=np.uint8), (0, 0), 1.5)
    img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX)
    for _ in range(6):
        x, y = rng.integers(0, w - 20), rng.integers(0, h - 20)
        cv2.rectangle(img, (int(x), int(y)), (int(x) + 18, int(y) + 12), int(rng.integers(0, 256)), -1)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)


def live(base: np.ndarray, i: int) -> np.ndarray:
    """``base`` with fresh sensor noise, so consecutive pictures differ as a live camera's do."""
    noise = np.random.default_rng(i).normal(0, 6, base.shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


FAST = HealthConfig(
    analysis_fps=4.0,
    learn_s=1.0,
    frozen_after_s=2.0,
    blocked_after_s=1.0,
    blurred_after_s=1.0,
    moved_after_s=1.0,
    clear_after_s=1.0,
    work_width=192,
    moved_width=96,
)


def test_config_rejects_unknown_and_inconsistent_fields() -> None:
    with pytest.raises(ValidationError, match="blured_ratio"):
        HealthConfig.model_validate({"blured_ratio": 0.3})
    with pytest.raises(ValidationError, match="moved_width"):
        HealthConfig(work_width=160, moved_width=320)
    with pytest.raises(ValidationError):
        HealthConfig(blurred_ratio=1.5)
    assert HealthConfig.model_validate({"checks": ["frozen", "moved"]}).checks == {FROZEN, MOVED}


def test_analyses_at_the_configured_rate() -> None:
    monitor = CameraHealthMonitor("cam", HealthConfig(analysis_fps=2.0), fps_hint=25.0)
    base = texture()
    analysed = []
    for i in range(250):  # 10 s at 25 fps
        pts = i / 25
        monitor.update(live(base, i), pts)
        if monitor.last is not None and monitor.last.pts == pts:
            analysed.append(pts)
    assert len(analysed) == 20
    assert np.all(np.abs(np.diff(analysed) - 0.5) <= 0.04 + 1e-9)


def test_luma_plane_and_bgr_measure_alike() -> None:
    bgr = texture(640, 360)
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    limited = (16 + grey.astype(np.float32) * 219 / 255).round().astype(np.uint8)
    padded = np.zeros((360, 704), np.uint8)  # a decoder's row padding, sliced off by the caller
    padded[:, :640] = limited
    a = to_work(bgr, 320)
    b = to_work(padded[:, :640], 320, lut=LIMITED_TO_FULL_LUT)
    assert a.shape == b.shape == (180, 320)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 2
    with pytest.raises(ValueError, match="uint8"):
        to_work(bgr.astype(np.float32), 320)
    with pytest.raises(ValueError, match="shape"):
        to_work(np.zeros((4, 4, 4), np.uint8), 320)


@settings(max_examples=40, deadline=None)
@given(dx=st.integers(-20, 20), dy=st.integers(-12, 12))
def test_phase_correlation_finds_a_shift(dx: int, dy: int) -> None:
    ref = cv2.cvtColor(texture(), cv2.COLOR_BGR2GRAY).astype(np.float32)
    pc = PhaseCorrelator(ref.shape)
    pc.set_reference(ref)
    mdx, mdy, peak = pc.match(np.roll(ref, (dy, dx), axis=(0, 1)))
    assert abs(mdx - dx) < 0.5 and abs(mdy - dy) < 0.5
    assert peak > 0.3
    assert pc.match(cv2.cvtColor(texture(seed=1), cv2.COLOR_BGR2GRAY))[2] < 0.15


def test_stream_restart_holds_timers_and_keeps_going() -> None:
    monitor = CameraHealthMonitor("cam", FAST, fps_hint=4.0)
    base = texture()
    for i in range(12):
        monitor.update(live(base, i), i / 4)
    dark = np.zeros_like(base)
    assert monitor.update(dark, 3.0) == []
    # The stream restarts (pts back to 0): the blackout streak starts again from there.
    out = [c for i in range(8) for c in monitor.update(dark, i / 4)]
    assert [(c.condition, c.active, c.since) for c in out] == [(BLOCKED, True, 0.0)]


def test_checks_not_configured_never_report() -> None:
    monitor = CameraHealthMonitor("cam", FAST.model_copy(update={"checks": frozenset({MOVED})}))
    out = [c for i in range(40) for c in monitor.update(np.zeros((108, 192, 3), np.uint8), i / 4)]
    assert out == []


# --- hysteresis and timers ---------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    on_s=st.floats(0, 5),
    off_s=st.floats(0, 5),
    samples=st.lists(st.tuples(st.floats(0, 2), st.booleans()), max_size=80),
)
def test_timer_alternates_and_respects_its_delays(
    on_s: float, off_s: float, samples: list[tuple[float, bool]]
) -> None:
    timer = ConditionTimer(on_s, off_s)
    pts = 0.0
    history: list[tuple[float, bool]] = []
    expect = Transition.START
    for dt, fault in samples:
        pts += dt
        history.append((pts, fault))
        event = timer.update(fault, pts)
        if event is None:
            continue
        assert event.transition is expect  # never two starts (or clears) in a row
        expect = Transition.CLEAR if expect is Transition.START else Transition.START
        # The streak that confirmed it is the run of equal samples ending here, long enough.
        run_start = pts
        for t, f in reversed(history):
            if f != fault:
                break
            run_start = t
        assert fault == (event.transition is Transition.START)
        assert event.since == run_start
        assert pts - event.since >= (on_s if fault else off_s)
        assert timer.active == (event.transition is Transition.START)


PICTURES = ("live", "black", "repeat", "blurred", "shifted", "other")


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(PICTURES), st.integers(1, 16)), min_size=1, max_size=10))
def test_monitor_never_reports_two_starts_without_a_clear(script: list[tuple[str, int]]) -> None:
    base, other = texture(), texture(seed=7)
    monitor = CameraHealthMonitor("cam", FAST, fps_hint=4.0)
    pictures: dict[str, Callable[[int], np.ndarray]] = {
        "live": lambda i: live(base, i),
        "black": lambda i: np.zeros_like(base),
        "blurred": lambda i: live(cv2.GaussianBlur(base, (0, 0), 3), i),
        "shifted": lambda i: live(np.roll(base, 40, axis=1), i),
        "other": lambda i: live(other, i),
    }
    active: set[HealthCondition] = set()
    previous = live(base, 0)
    i = 0
    for picture, count in [("live", 8), *script]:
        for _ in range(count):
            image = previous if picture == "repeat" else pictures[picture](i)
            for change in monitor.update(image, i / 4):
                assert change.active != (change.condition in active), change
                (active.add if change.active else active.discard)(change.condition)
                assert change.since <= change.pts
            previous = image
            i += 1
    assert monitor.active == active


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 12), seed=st.integers(0, 1000))
def test_leave_one_out_medians_match_numpy(n: int, seed: int) -> None:
    stack = np.random.default_rng(seed).integers(0, 6, (n, 5, 7)).astype(np.float32)  # many ties
    whole, others = medians(stack)
    assert np.allclose(whole, np.median(stack, axis=0))
    for i in range(n if n > 1 else 0):
        assert np.allclose(others[i], np.median(np.delete(stack, i, axis=0), axis=0))
