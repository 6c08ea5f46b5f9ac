from __future__ import annotations

from events.camera_health import CameraHealthEvents
from events.model import EventType, Phase
from ingest.health import HealthChange, HealthCondition
from ingest.status import CameraState as S

WALL = 1_717_250_000.0


def change(cond: HealthCondition, active: bool, since: float) -> HealthChange:
    return HealthChange(
        "gate", cond, active, pts=since + 5, since=since, measure="m", value=0.1, threshold=0.3
    )


def test_offline_then_online_lifecycle() -> None:
    ev = CameraHealthEvents("gate")
    assert (
        ev.status_changed(old=S.CONNECTING, new=S.ONLINE, error=None, wall=WALL) == []
    )  # first connection: no event
    assert (
        ev.status_changed(old=S.ONLINE, new=S.CONNECTING, error="end of stream", wall=WALL + 1) == []
    )  # within grace
    [start] = ev.status_changed(
        old=S.CONNECTING, new=S.OFFLINE, error="Connection refused", pts=12.0, wall=WALL + 11
    )
    assert (start.phase, start.event.type, start.event.data["error"]) == (
        Phase.START,
        EventType.CAMERA_OFFLINE,
        "Connection refused",
    )
    assert ev.status_changed(old=S.OFFLINE, new=S.OFFLINE, error="again", wall=WALL + 20) == []
    end, online_start, online_end = ev.status_changed(
        old=S.OFFLINE, new=S.ONLINE, error=None, pts=12.0, wall=WALL + 30
    )
    assert (end.phase, end.event.id, end.event.active) == (Phase.END, start.event.id, False)
    assert (end.event.end_time - end.event.start_time).total_seconds() == 19
    assert online_start.event.type == EventType.CAMERA_ONLINE and online_start.phase == Phase.START
    assert online_end.phase == Phase.END and online_end.event.id == online_start.event.id


def test_health_conditions_start_and_clear() -> None:
    ev = CameraHealthEvents("gate")
    [start] = ev.health_changed([change(HealthCondition.BLOCKED, True, 30.0)], wall=WALL)
    assert start.event.type == EventType.CAMERA_BLOCKED and start.event.start_pts == 30.0
    assert start.event.data["threshold"] == 0.3 and start.event.rule == "camera_health"
    assert ev.health_changed([change(HealthCondition.BLOCKED, True, 31.0)], wall=WALL) == []  # already open
    [end] = ev.health_changed([change(HealthCondition.BLOCKED, False, 60.0)], wall=WALL + 30)
    assert end.event.id == start.event.id and end.event.end_pts == 60.0 and not end.event.active
    assert ev.health_changed([change(HealthCondition.BLOCKED, False, 61.0)], wall=WALL) == []  # nothing open


def test_close_ends_what_is_open() -> None:
    ev = CameraHealthEvents("gate")
    ev.health_changed([change(HealthCondition.FROZEN, True, 1.0), change(HealthCondition.MOVED, True, 2.0)])
    ev.status_changed(old=S.CONNECTING, new=S.OFFLINE, error="refused")
    closed = ev.close(pts=9.0)
    assert {t.event.type for t in closed} == {
        EventType.CAMERA_FROZEN,
        EventType.CAMERA_MOVED,
        EventType.CAMERA_OFFLINE,
    }
    assert all(t.phase == Phase.END and t.event.data["end_reason"] == "closed" for t in closed)
    assert ev.close() == []
