from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import supervision as sv
from pydantic import TypeAdapter

from events.config import RuleConfig
from events.model import EventTransition, EventType, Phase
from events.rules import build_rule
from events.rules.base import FrameContext, Rule, RuleOutput
from ingest.frame import Frame

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
WALL0 = datetime(2024, 6, 1, 12, 0, tzinfo=TZ).timestamp()
IMAGE = np.zeros((8, 8, 3), dtype=np.uint8)
SQUARE = [[100, 100], [300, 100], [300, 300], [100, 300]]
IN, OUT = (200, 200), (500, 500)  # anchor points inside and outside the square


def _objects(obs: Sequence[tuple]) -> sv.Detections:
    """obs: (track id, (x, y) bottom centre[, class[, confidence]])."""
    if not obs:
        d = sv.Detections.empty()
        d.tracker_id = np.zeros(0, dtype=int)
        d.confidence = np.zeros(0, dtype=np.float32)
        d.data = {"class_name": np.zeros(0, dtype=str)}
        return d
    xyxy = np.array([[o[1][0] - 10, o[1][1] - 40, o[1][0] + 10, o[1][1]] for o in obs], dtype=np.float32)
    return sv.Detections(
        xyxy=xyxy,
        confidence=np.array([o[3] if len(o) > 3 else 0.8 for o in obs], dtype=np.float32),
        class_id=np.zeros(len(obs), dtype=int),
        tracker_id=np.array([o[0] for o in obs], dtype=int),
        data={"class_name": np.array([o[2] if len(o) > 2 else "person" for o in obs])},
    )


def _rule(**config: object) -> Rule:
    return build_rule(TypeAdapter(RuleConfig).validate_python({"polygon": SQUARE, **config}), "cam", TZ)


class Clock:
    """Feeds a rule frames at a fixed rate and collects everything it emits."""

    def __init__(self, rule: Rule, dt: float = 0.2, wall0: float = WALL0) -> None:
        self.rule, self.dt, self.wall0 = rule, dt, wall0
        self.i = 0
        self.out = RuleOutput()

    @property
    def pts(self) -> float:
        return self.i * self.dt

    def step(self, *obs: tuple, n: int = 1) -> RuleOutput:
        frame_out = RuleOutput()
        for _ in range(n):
            frame = Frame("cam", self.i, self.pts, self.wall0 + self.pts, IMAGE)
            self.rule.update(FrameContext("cam", frame, _objects(obs), TZ), frame_out)
            self.i += 1
        for name in ("transitions", "snapshots", "crossings"):
            getattr(self.out, name).extend(getattr(frame_out, name))
        return frame_out

    def for_seconds(self, seconds: float, *obs: tuple) -> RuleOutput:
        return self.step(*obs, n=round(seconds / self.dt))

    def phases(self) -> list[Phase]:
        return [t.phase for t in self.out.transitions]


def assert_lifecycles(transitions: Sequence[EventTransition]) -> None:
    """Each event: one start, updates, one end, in that order, with constant identity fields."""
    by_id: dict[str, list[EventTransition]] = {}
    for t in transitions:
        by_id.setdefault(t.event.id, []).append(t)
    for seq in by_id.values():
        phases = [t.phase for t in seq]
        assert phases[0] is Phase.START
        assert all(p is Phase.UPDATE for p in phases[1:-1])
        assert phases[-1] in (Phase.END, Phase.UPDATE) and phases.count(Phase.END) <= 1
        first = seq[0].event
        for t in seq:
            ev = t.event
            assert (ev.camera, ev.rule, ev.type, ev.start_pts, ev.start_time) == (
                first.camera,
                first.rule,
                first.type,
                first.start_pts,
                first.start_time,
            )
            assert ev.active is (t.phase is not Phase.END)
            assert (ev.end_pts is None) is ev.active
            assert ev.start_time.tzinfo is not None
            assert set(first.track_ids) <= set(ev.track_ids)


# Zone intrusion ---------------------------------------------------------------


def test_intrusion_episode_lifecycle() -> None:
    c = Clock(_rule(name="yard", type="zone_intrusion", classes=["person"], end_after_s=2.0))
    c.for_seconds(1.0, (1, OUT))
    assert c.out.transitions == []
    started = c.step((1, IN, "person", 0.6))
    (start,) = started.transitions
    assert start.phase is Phase.START and start.event.track_ids == [1]
    assert start.event.type is EventType.ZONE_INTRUSION and start.event.start_pts == pytest.approx(1.0)
    assert start.event.start_time == datetime(2024, 6, 1, 12, 0, 1, tzinfo=TZ)
    c.for_seconds(2.0, (1, IN, "person", 0.6), (2, IN, "dog"))  # a dog does not join
    c.for_seconds(1.0, (1, IN, "person", 0.6), (3, IN, "person", 0.5))  # a second person joins
    last_in = c.pts - c.dt
    c.for_seconds(2.0)  # zone empty for the grace: still open
    assert c.phases()[-1] is not Phase.END
    c.step()
    assert c.phases() == [Phase.START, Phase.UPDATE, Phase.END]
    end = c.out.transitions[-1].event
    assert end.id == start.event.id and end.track_ids == [1, 3] and end.classes == ["person"]
    assert end.end_pts == pytest.approx(last_in) and end.data["max_count"] == 2
    assert end.data["end_reason"] == "cleared"
    assert_lifecycles(c.out.transitions)


def test_intrusion_grace_bridges_short_absences() -> None:
    c = Clock(_rule(name="yard", type="zone_intrusion", end_after_s=2.0))
    c.for_seconds(1.0, (1, IN))
    c.for_seconds(1.6)  # out of sight for less than the grace
    c.for_seconds(1.0, (1, IN))
    c.for_seconds(3.0)
    c.for_seconds(1.0, (2, IN))
    c.for_seconds(3.0)
    starts = [t.event.id for t in c.out.transitions if t.phase is Phase.START]
    ends = [t.event.id for t in c.out.transitions if t.phase is Phase.END]
    assert len(starts) == 2 and ends == starts
    assert_lifecycles(c.out.transitions)


def test_snapshot_candidates_only_when_confidence_improves() -> None:
    c = Clock(_rule(name="yard", type="zone_intrusion", update_interval_s=0))
    for conf in [0.5, 0.4, 0.6, 0.6, 0.55, 0.7, 0.65]:
        c.step((1, IN, "person", conf))
    assert [round(s.confidence, 2) for s in c.out.snapshots] == [0.5, 0.6, 0.7]
    event_id = c.out.transitions[0].event.id
    assert {s.event_id for s in c.out.snapshots} == {event_id}
    assert [s.frame_index for s in c.out.snapshots] == [0, 2, 5]
    assert c.out.transitions[-1].event.score == pytest.approx(0.7)
    # The best of several objects in the zone is the candidate.
    c2 = Clock(_rule(name="yard", type="zone_intrusion"))
    c2.step((1, IN, "person", 0.5), (2, (150, 150), "person", 0.9), (3, OUT, "person", 0.95))
    (snap,) = c2.out.snapshots
    assert snap.track_id == 2 and snap.confidence == pytest.approx(0.9)


def test_updates_are_throttled() -> None:
    c = Clock(_rule(name="yard", type="zone_intrusion", update_interval_s=1.0), dt=0.1)
    c.step((1, IN, "person", 0.1))
    for k in range(20):  # a better snapshot every frame for 2 s
        c.step((1, IN, "person", 0.2 + 0.03 * k))
    updates = [t for t in c.out.transitions if t.phase is Phase.UPDATE]
    assert len(c.out.snapshots) == 21
    assert 1 <= len(updates) <= 2
    pts = [t.event.start_pts for t in updates]
    assert all(p == pts[0] for p in pts)


@pytest.mark.parametrize(
    ("local", "armed"),
    [
        ((21, 59), False),
        ((22, 0), True),
        ((23, 30), True),
        ((0, 0), True),
        ((4, 59), True),
        ((5, 0), False),
        ((12, 0), False),
    ],
)
def test_active_hours_span_midnight(local: tuple[int, int], armed: bool) -> None:
    wall = datetime(2024, 6, 1, *local, tzinfo=TZ).timestamp()
    c = Clock(_rule(name="night", type="zone_intrusion", active_hours="22:00-05:00"), wall0=wall)
    c.step((1, IN))
    assert bool(c.out.transitions) is armed


def test_active_hours_use_the_rule_time_zone() -> None:
    # 16:30 UTC is 23:30 in Ho Chi Minh City.
    wall = datetime(2024, 6, 1, 16, 30, tzinfo=ZoneInfo("UTC")).timestamp()
    camera_zone = Clock(_rule(name="n", type="zone_intrusion", active_hours="22:00-05:00"), wall0=wall)
    camera_zone.step((1, IN))
    assert camera_zone.out.transitions  # camera time zone: 23:30, armed
    utc = Clock(
        _rule(name="n", type="zone_intrusion", active_hours="22:00-05:00", timezone="UTC"), wall0=wall
    )
    utc.step((1, IN))
    assert not utc.out.transitions  # rule time zone: 16:30, not armed
    # Several windows.
    multi = Clock(
        _rule(name="n", type="zone_intrusion", active_hours=["08:00-09:00", "16:00-17:00"], timezone="UTC")
    )
    multi.wall0 = wall
    multi.step((1, IN))
    assert multi.out.transitions


def test_episode_ends_when_active_hours_end() -> None:
    wall = datetime(2024, 6, 2, 4, 59, 58, tzinfo=TZ).timestamp()
    c = Clock(_rule(name="n", type="zone_intrusion", active_hours="22:00-05:00", end_after_s=1.0), wall0=wall)
    c.for_seconds(6.0, (1, IN))
    assert c.phases() == [Phase.START, Phase.END]
    assert c.out.transitions[-1].event.end_time == datetime(2024, 6, 2, 4, 59, 59, 800000, tzinfo=TZ)


# Loitering --------------------------------------------------------------------


def test_loitering_starts_at_threshold_and_ends_after_leaving() -> None:
    c = Clock(_rule(name="lurk", type="loitering", min_dwell_s=5.0, end_after_s=2.0))
    c.for_seconds(4.8, (1, IN, "person", 0.6))  # dwell 0 .. 4.6 s
    assert c.out.transitions == []
    c.step((1, IN, "person", 0.6))  # pts 4.8: dwell 4.8
    assert c.out.transitions == []
    c.step((1, IN, "person", 0.6))  # pts 5.0: dwell reaches 5 s
    (start,) = c.out.transitions
    assert start.event.type is EventType.LOITERING and start.event.start_pts == pytest.approx(5.0)
    assert start.event.data["entered_pts"] == 0.0 and start.event.data["dwell_s"] == pytest.approx(5.0)
    assert start.event.data["entered_time"] == datetime(2024, 6, 1, 12, 0, tzinfo=TZ).isoformat()
    c.for_seconds(2.8, (1, IN, "person", 0.9))  # until pts 7.8; a better snapshot
    c.for_seconds(2.0, (1, OUT))  # out of the zone: grace
    assert c.phases()[-1] is Phase.UPDATE
    c.step((1, OUT))
    end = c.out.transitions[-1].event
    assert c.phases() == [Phase.START, Phase.UPDATE, Phase.END]
    assert end.end_pts == pytest.approx(7.8) and end.data["dwell_s"] == pytest.approx(7.8)
    assert end.score == pytest.approx(0.9)
    assert [round(s.confidence, 1) for s in c.out.snapshots] == [0.6, 0.9]
    assert_lifecycles(c.out.transitions)


def test_loitering_dwell_survives_short_absences_only() -> None:
    c = Clock(_rule(name="lurk", type="loitering", min_dwell_s=3.0, end_after_s=1.0))
    c.for_seconds(2.0, (1, IN))
    c.for_seconds(0.8)  # hidden less than the grace: dwell continues
    c.for_seconds(0.6, (1, IN))
    assert c.phases() == [Phase.START]
    c2 = Clock(_rule(name="lurk", type="loitering", min_dwell_s=3.0, end_after_s=1.0))
    c2.for_seconds(2.0, (1, IN))
    c2.for_seconds(1.4)  # away longer than the grace: dwell restarts
    c2.for_seconds(2.0, (1, IN))
    assert c2.out.transitions == []


def test_loitering_one_event_per_track() -> None:
    c = Clock(_rule(name="lurk", type="loitering", min_dwell_s=1.0))
    c.for_seconds(0.6, (1, IN))
    c.for_seconds(2.0, (1, IN), (2, IN), (3, OUT))
    starts = [t.event for t in c.out.transitions if t.phase is Phase.START]
    assert [e.track_ids for e in starts] == [[1], [2]]
    assert starts[0].id != starts[1].id
    out = RuleOutput()
    c.rule.close(out)
    assert [t.phase for t in out.transitions] == [Phase.END, Phase.END]
    assert {t.event.id for t in out.transitions} == {e.id for e in starts}
    assert all(t.event.data["end_reason"] == "closed" for t in out.transitions)
    assert c.rule.open_event_ids == []


# Crowding ---------------------------------------------------------------------


def _people(n: int, conf: float = 0.8) -> list[tuple]:
    return [(k, (110 + 10 * k, 200), "person", conf) for k in range(n)]


def test_crowding_threshold_duration_and_end_grace() -> None:
    c = Clock(_rule(name="crowd", type="crowding", min_count=3, min_duration_s=2.0, end_after_s=2.0))
    c.for_seconds(3.0, *_people(2))  # below the threshold
    assert c.out.transitions == []
    c.for_seconds(2.0, *_people(3))  # 2 s at the threshold: pts 3.0 .. 4.8
    assert c.out.transitions == []
    c.step(*_people(3))  # pts 5.0: held for 2 s
    (start,) = c.out.transitions
    assert start.event.type is EventType.CROWDING and start.event.start_pts == pytest.approx(5.0)
    assert start.event.data["count"] == 3 and start.event.data["formed_pts"] == pytest.approx(3.0)
    c.for_seconds(1.0, *_people(5))
    c.for_seconds(2.0, *_people(2))  # below for the grace: still open
    assert c.phases()[-1] is not Phase.END
    c.step(*_people(2))
    end = c.out.transitions[-1].event
    assert c.phases()[-1] is Phase.END and end.id == start.event.id
    assert end.end_pts == pytest.approx(6.0) and end.data["max_count"] == 5 and end.data["count"] == 2
    assert end.track_ids == [0, 1, 2, 3, 4]
    assert_lifecycles(c.out.transitions)


def test_crowding_short_dips_do_not_restart_the_wait() -> None:
    rule = _rule(name="crowd", type="crowding", min_count=3, min_duration_s=2.0, end_after_s=1.0)
    c = Clock(rule)
    c.for_seconds(1.0, *_people(3))
    c.for_seconds(0.4, *_people(2))  # a dip shorter than the grace
    c.for_seconds(0.8, *_people(3))
    assert c.phases() == [Phase.START]
    assert c.out.transitions[0].event.data["formed_pts"] == 0.0
    c2 = Clock(_rule(name="crowd", type="crowding", min_count=3, min_duration_s=2.0, end_after_s=1.0))
    c2.for_seconds(1.0, *_people(3))
    c2.for_seconds(1.4, *_people(2))  # longer than the grace: the wait restarts
    c2.for_seconds(1.8, *_people(3))
    assert c2.out.transitions == []


def test_crowding_updates_on_count_changes_throttled_and_snapshots() -> None:
    c = Clock(
        _rule(name="crowd", type="crowding", min_count=2, min_duration_s=0, update_interval_s=1.0), dt=0.1
    )
    c.step(*_people(2, 0.9))
    for k in range(30):  # the count flickers between 3 and 4 for 3 s
        c.step(*_people(3 + k % 2, 0.5))
    updates = [t.event for t in c.out.transitions if t.phase is Phase.UPDATE]
    assert 2 <= len(updates) <= 3
    # Snapshots: 2 people (first), then 3 (more people beat a higher mean confidence), then 4.
    assert [len(s.boxes) for s in c.out.snapshots] == [2, 3, 4]
    snap = c.out.snapshots[-1]
    np.testing.assert_allclose(snap.box, [100, 160, 150, 200])
    assert snap.class_name == "person" and snap.confidence == pytest.approx(0.5)


def test_an_hours_long_crowd_is_split_and_its_payload_stays_bounded() -> None:
    """Bounded growth: a crowd of ever-new people for 25 minutes gives events of at most max_event_s,
    each listing at most MAX_TRACK_IDS ids with the true count beside them."""
    from events.rules.base import MAX_TRACK_IDS

    rule = _rule(name="crowd", type="crowding", min_count=3, min_duration_s=1)
    out = RuleOutput()
    for i in range(1500):  # 1 fps; every 5 s three new people (new track ids) stand in the square
        group = i // 5
        frame = Frame("cam", i, float(i), WALL0 + i, IMAGE)
        objects = _objects([(group * 3 + k, (150 + 20 * k, 200)) for k in range(3)])
        ctx = FrameContext("cam", frame, objects, TZ)
        rule.update(ctx, out)
        rule.split_overlong(ctx, out, 600.0)
    rule.close(out)
    ends = [t.event for t in out.transitions if t.phase is Phase.END]
    assert [e.data["end_reason"] for e in ends] == ["max_duration", "max_duration", "closed"]
    assert all(e.end_pts - e.start_pts <= 600 for e in ends)
    assert [e.data.get("continues") for e in ends] == [None, ends[0].id, ends[1].id]
    assert all(len(t.event.track_ids) <= MAX_TRACK_IDS for t in out.transitions)
    assert 3 * 120 <= ends[0].data["track_count"] <= 3 * 122  # 600 s of people, 3 every 5 s
