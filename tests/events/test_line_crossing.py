from __future__ import annotations

from collections.abc import Sequence
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import supervision as sv
from hypothesis import given, settings
from hypothesis import strategies as st

from events.config import LineCrossingConfig
from events.geometry import line_coordinates
from events.model import EventType, Phase
from events.rules.base import FrameContext, RuleOutput
from events.rules.line_crossing import CrossingState, LineCrossingRule, crossing_step
from ingest.frame import Frame

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
WALL0 = 1_717_243_200.0  # 2024-06-01 12:00:00 UTC
IMAGE = np.zeros((8, 8, 3), dtype=np.uint8)

# One observation: (track id, anchor x, anchor y[, class name[, confidence]]).
Obs = tuple


def _objects(obs: Sequence[Obs]) -> sv.Detections:
    if not obs:
        d = sv.Detections.empty()
        d.tracker_id = np.zeros(0, dtype=int)
        d.confidence = np.zeros(0, dtype=np.float32)
        d.data = {"class_name": np.zeros(0, dtype=str)}
        return d
    ids = [o[0] for o in obs]
    # Boxes 20 x 40 px whose bottom centre is the given point.
    xyxy = np.array([[o[1] - 10, o[2] - 40, o[1] + 10, o[2]] for o in obs], dtype=np.float32)
    classes = [o[3] if len(o) > 3 else "person" for o in obs]
    conf = [o[4] if len(o) > 4 else 0.8 for o in obs]
    return sv.Detections(
        xyxy=xyxy,
        confidence=np.array(conf, dtype=np.float32),
        class_id=np.zeros(len(obs), dtype=int),
        tracker_id=np.array(ids, dtype=int),
        data={"class_name": np.array(classes)},
    )


def _run(rule: LineCrossingRule, frames: Sequence[Sequence[Obs]], dt: float = 0.2) -> RuleOutput:
    out = RuleOutput()
    for i, obs in enumerate(frames):
        frame = Frame(camera="cam", index=i, pts=i * dt, wall_time=WALL0 + i * dt, image=IMAGE)
        rule.update(FrameContext("cam", frame, _objects(obs), TZ), out)
    return out


def _rule(**kwargs: object) -> LineCrossingRule:
    config = {"name": "gate", "start": (0, 100), "end": (200, 100), "hysteresis_px": 10, **kwargs}
    return LineCrossingRule(LineCrossingConfig.model_validate(config), "cam", TZ)


def _path(track: int, x: float, ys: Sequence[float], *extra: object) -> list[list[Obs]]:
    return [[(track, x, y, *extra)] for y in ys]


def _directions(out: RuleOutput) -> list[tuple[int, str]]:
    return [
        (e.event.track_ids[0], e.event.data["direction"]) for e in out.transitions if e.phase is Phase.START
    ]


def test_moving_up_is_in_and_down_is_out() -> None:
    up = _run(_rule(), _path(1, 100, range(160, 40, -10)))
    assert _directions(up) == [(1, "in")]
    down = _run(_rule(), _path(2, 100, range(40, 160, 10)))
    assert _directions(down) == [(2, "out")]
    assert [(c.line, c.class_name, c.direction) for c in up.crossings + down.crossings] == [
        ("gate", "person", "in"),
        ("gate", "person", "out"),
    ]


def test_direction_matches_supervision_line_zone() -> None:
    zone = sv.LineZone(
        start=sv.Point(0, 100), end=sv.Point(200, 100), triggering_anchors=[sv.Position.BOTTOM_CENTER]
    )
    for obs in _path(1, 100, range(160, 40, -10)):
        zone.trigger(_objects(obs))
    assert (zone.in_count, zone.out_count) == (1, 0)
    assert _directions(_run(_rule(), _path(1, 100, range(160, 40, -10)))) == [(1, "in")]


def test_crossing_snapshots_are_off_by_default() -> None:
    out = _run(_rule(), _path(7, 50, [150, 130, 112, 95, 85, 70], "car", 0.9))
    assert [t.phase for t in out.transitions] == [Phase.START, Phase.END]
    assert out.snapshots == [] and len(out.crossings) == 1


def test_crossing_event_snapshot_and_crossing_record() -> None:
    frames = _path(7, 50, [150, 130, 112, 95, 85, 70], "car", 0.9)
    out = _run(_rule(snapshots=True), frames)
    start, end = out.transitions
    assert (start.phase, end.phase) == (Phase.START, Phase.END)
    assert start.event.id == end.event.id
    ev = end.event
    assert ev.type is EventType.LINE_CROSSING and ev.rule == "gate" and ev.camera == "cam"
    assert ev.classes == ["car"] and ev.track_ids == [7] and ev.data["direction"] == "in"
    # Counted at the frame that is beyond the band on the new side (y = 85 < 100 - 10).
    assert start.event.active and not end.event.active
    assert ev.start_pts == ev.end_pts == pytest.approx(4 * 0.2)
    assert ev.start_time == ev.end_time and ev.start_time.utcoffset().total_seconds() == 7 * 3600
    assert ev.score == pytest.approx(0.9)
    (snap,) = out.snapshots
    assert snap.event_id == ev.id and snap.track_id == 7 and snap.class_name == "car"
    np.testing.assert_allclose(snap.box, [40, 45, 60, 85])
    assert snap.boxes.shape == (0, 4)
    assert snap.image is IMAGE  # by reference, no copy
    (crossing,) = out.crossings
    assert crossing.wall_time == pytest.approx(WALL0 + 0.8)


def test_jitter_on_the_line_never_counts() -> None:
    rng = np.random.default_rng(1)
    jitter = 100 + rng.uniform(-10, 10, size=200)  # within the 10 px band
    # Committed below the line, then jittering across it, then back below.
    frames = _path(1, 100, [150, 130, *jitter, 130, 150])
    assert _run(_rule(), frames).transitions == []
    # Born inside the band: never on a side, so never crossing from one.
    assert _run(_rule(), _path(2, 100, jitter)).transitions == []


def test_a_track_is_counted_once_per_line() -> None:
    there_and_back = [*range(160, 40, -10), *range(40, 160, 10), *range(160, 40, -10)]
    out = _run(_rule(), _path(1, 100, there_and_back))
    assert _directions(out) == [(1, "in")]
    # Another track is counted on its own.
    both = [[(1, 100, y), (2, 150, 200 - y)] for y in there_and_back]
    out = _run(_rule(), both)
    assert sorted(_directions(out)) == [(1, "in"), (2, "out")]


def test_segment_extent() -> None:
    # Crossing the infinite line beyond the end of the segment does not count.
    assert _run(_rule(), _path(1, 250, range(160, 40, -10))).transitions == []
    assert _run(_rule(), _path(1, -1, range(160, 40, -10))).transitions == []
    assert _directions(_run(_rule(), _path(1, 199, range(160, 40, -10)))) == [(1, "in")]
    # What counts is where the path passes the line, not where the points are:
    # from (220, 150) to (160, 50) passes it at x = 190, inside the segment.
    assert _directions(_run(_rule(), [[(1, 220, 150)], [(1, 160, 50)]])) == [(1, "in")]
    # Going around the end of the segment changes the side without counting,
    # and coming back through the segment afterwards counts once, as "out".
    around = [[(1, 150, 150)], [(1, 250, 150)], [(1, 250, 50)], [(1, 150, 50)], [(1, 150, 150)]]
    assert _directions(_run(_rule(), around)) == [(1, "out")]


def test_crossing_across_an_occlusion_gap_counts() -> None:
    frames = [[(1, 100, 150)], [(1, 100, 140)], [], [], [], [(1, 100, 60)]]
    assert _directions(_run(_rule(), frames)) == [(1, "in")]


def test_class_and_confidence_filters() -> None:
    rule = _rule(classes=["car"], min_confidence=0.5)
    assert _run(rule, _path(1, 100, range(160, 40, -10), "person", 0.9)).transitions == []
    # A low-confidence detection at the decisive frame leaves the crossing
    # pending; the next good detection on that side counts it.
    frames = [[(2, 100, 150, "car", 0.9)], [(2, 100, 80, "car", 0.3)], [(2, 100, 70, "car", 0.3)]]
    frames += [[(2, 100, 60, "car", 0.7)]]
    out = _run(_rule(classes=["car"], min_confidence=0.5), frames)
    assert _directions(out) == [(2, "in")]
    assert out.transitions[0].event.start_pts == pytest.approx(0.6)


def test_other_anchor() -> None:
    # With the top-centre anchor the box's top (y - 40) must cross.
    rule = _rule(anchor="top_center")
    assert _run(rule, _path(1, 100, range(160, 125, -5))).transitions == []
    assert _directions(_run(_rule(anchor="top_center"), _path(1, 100, range(160, 80, -5)))) == [(1, "in")]


def test_state_of_vanished_tracks_is_dropped() -> None:
    rule = _rule()
    _run(rule, _path(1, 100, [150, 140]))
    assert len(rule._tracks) == 1
    frame = Frame(camera="cam", index=99, pts=1000.0, wall_time=WALL0 + 1000, image=IMAGE)
    rule.update(FrameContext("cam", frame, _objects([]), TZ), RuleOutput())
    assert len(rule._tracks) == 0


def _reference(obs: list[tuple[float, float, bool]], length: float, d: float) -> list[int]:
    """The crossing state machine for one track, written plainly."""
    side, armed, counted, prev, result = 0, False, False, None, []
    for u, s, eligible in obs:
        if prev is not None and (s > 0) != (prev[1] > 0):
            u_cross = prev[0] + (u - prev[0]) * prev[1] / (prev[1] - s)
            armed = 0.0 <= u_cross <= length
        crossed = 0
        if abs(s) > d:
            new = 1 if s > 0 else -1
            if side != 0 and new != side and armed and not counted:
                if eligible:
                    crossed, counted, side, armed = new, True, new, False
            else:
                side, armed = new, False
        result.append(crossed)
        prev = (u, s)
    return result


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 5),
    st.integers(2, 60),
    st.floats(0, 30),
    st.integers(0, 2**32 - 1),
)
def test_rule_matches_reference_state_machine(n_tracks: int, n_frames: int, band: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    rule = _rule(hysteresis_px=band, classes=["person"])
    # Random walks around the segment; each track is missing from some frames.
    pos = rng.uniform([-50, 40], [250, 160], size=(n_tracks, 2))
    frames, per_track = [], {t: [] for t in range(n_tracks)}
    for _ in range(n_frames):
        pos += rng.normal(0, 25, size=pos.shape)
        present = rng.random(n_tracks) < 0.8
        obs = []
        for t in np.flatnonzero(present):
            cls = "person" if rng.random() < 0.8 else "dog"
            x, y = float(np.float32(pos[t, 0])), float(np.float32(pos[t, 1]))
            obs.append((int(t), x, y, cls))
        frames.append(obs)
    out = _run(rule, frames)
    got = {t: [] for t in range(n_tracks)}
    for e in out.transitions:
        if e.phase is Phase.START:
            got[e.event.track_ids[0]].append(e.event.data["direction"])
    for obs in frames:
        if not obs:
            continue
        anchors = np.array([[o[1], o[2]] for o in obs], dtype=np.float32).astype(np.float64)
        u, s = line_coordinates(anchors, (0, 100), (200, 100))
        for k, o in enumerate(obs):
            per_track[o[0]].append((u[k], s[k], o[3] == "person"))
    for t, obs in per_track.items():
        expected = ["in" if c < 0 else "out" for c in _reference(obs, 200.0, band) if c]
        assert got[t] == expected
        assert len(expected) <= 1


@settings(max_examples=200, deadline=None)
@given(
    st.floats(1, 40),
    st.integers(0, 2**32 - 1),
    st.integers(5, 60),
    st.booleans(),
)
def test_hysteresis_never_double_counts_under_jitter(
    band: float, seed: int, steps: int, upward: bool
) -> None:
    """Without the once-per-track rule, a monotonic pass with jitter up to the band crosses exactly once."""
    rng = np.random.default_rng(seed)
    true_s = np.linspace(-3 * band - 1, 3 * band + 1, steps)
    if upward:
        true_s = true_s[::-1]
    s = true_s + rng.uniform(-band, band, size=steps)
    s[0], s[-1] = true_s[0], true_s[-1]  # start and end clearly on each side
    u = rng.uniform(10, 190, size=steps)
    state = CrossingState(
        prev_u=np.zeros(1), prev_s=np.zeros(1), seen=np.zeros(1, bool), side=np.zeros(1, np.int8),
        armed=np.zeros(1, bool), counted=np.zeros(1, bool),
    )  # fmt: skip
    crossings = []
    for k in range(steps):
        state.counted[:] = False  # only hysteresis may prevent double counts here
        crossings.append(
            int(crossing_step(state, u[k : k + 1], s[k : k + 1], np.ones(1, bool), 200.0, band)[0])
        )
    nonzero = [c for c in crossings if c]
    assert nonzero == [1 if not upward else -1]
