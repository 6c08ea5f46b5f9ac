"""The controller's state machine on simulated nodes (benchmarks/city_sim.SimRuntime) and a real
PostgreSQL: what a crashed camera, a slow graceful move and a move that dies midway must (not) do.

The Ray integration test (test_cluster_ray.py) covers the same controller on real nodes; these cover
the edge cases a real cluster rarely shows on cue.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from benchmarks.city_sim import SimRuntime
from cluster.config import ClusterConfig
from cluster.controller import Controller, Poll
from cluster.leases import Leases
from cluster.placement import CameraSpec
from events.model import EventType
from events.storage.postgres import PostgresEventStore
from events.storage.store import EventFilters

pytestmark = pytest.mark.slow

CONFIG = ClusterConfig(address="127.0.0.2:6379", rehome_after_s=5, poll_interval_s=1, max_moves_per_round=2)
CAMERAS = [CameraSpec(f"cam{i}", f"kp{i // 2}") for i in range(8)]


@dataclass
class SlowStops(SimRuntime):
    """Graceful stops take ``stop_rounds`` polls; ``die_on_stop`` cameras die instead of stopping."""

    stop_rounds: int = 1
    die_on_stop: set[str] = field(default_factory=set)
    _stopping_for: dict[str, int] = field(default_factory=dict)

    def stop_camera(self, *, camera: str, graceful: bool) -> None:
        if graceful and camera in self.running:
            self._stopping_for[camera] = self.stop_rounds
            self.reports.pop(camera, None)  # a stopping actor answers no reports
            return
        self._stopping_for.pop(camera, None)
        super().stop_camera(camera=camera, graceful=graceful)

    def poll(self, *, timeout_s: float) -> Poll:
        for camera in list(self._stopping_for):
            self._stopping_for[camera] -= 1
            if self._stopping_for[camera] <= 0:
                del self._stopping_for[camera]
                self.running.pop(camera, None)
                if camera in self.die_on_stop:
                    self.dead[camera] = "ActorDiedError: died while stopping"
                else:
                    self.stopping.add(camera)
        return super().poll(timeout_s=timeout_s)


def _run(controller: Controller, start: float, rounds: int) -> float:
    now = start
    for _ in range(rounds):
        controller.tick(now=now)
        now += CONFIG.poll_interval_s
    return now


def _health_events(store: PostgresEventStore, camera: str | None = None) -> list[tuple[str, str, bool]]:
    out = []
    for kind in (EventType.CAMERA_OFFLINE, EventType.CAMERA_ONLINE):
        events, _ = store.list_events(EventFilters(type=kind), limit=500)
        out += [(e.camera, e.type.value, e.active) for e in events if camera in (None, e.camera)]
    return sorted(out)


def test_a_crashed_camera_moves_no_other_camera(store: PostgresEventStore) -> None:
    rt = SimRuntime()
    rt.add_node("A", 8)
    rt.add_node("B", 8)
    controller = Controller(rt, store, CAMERAS, CONFIG, timezone="Asia/Ho_Chi_Minh")
    now = _run(controller, 0.0, 3)
    before = {c: node for c, (node, _) in rt.running.items()}
    assert len(before) == 8 and set(before.values()) == {"A", "B"}
    crashed = next(c for c, n in before.items() if n == "A")
    del rt.running[crashed]
    rt.reports.pop(crashed)
    rt.dead[crashed] = "ActorDiedError: segfault in the decoder"
    _run(controller, now, 8)  # the crash, its backoff (2 s), its restart
    after = {c: node for c, (node, _) in rt.running.items()}
    assert {c: n for c, n in after.items() if c != crashed} == {
        c: n for c, n in before.items() if c != crashed
    }
    assert crashed in after and controller.moves == 0 and controller.rehomes == 1
    assert not rt.violations
    # The crashed camera's outage is one offline/online pair; no other camera has one.
    assert _health_events(store) == [(crashed, "camera_offline", False), (crashed, "camera_online", False)]


def test_a_slow_graceful_move_is_not_a_loss(store: PostgresEventStore) -> None:
    rt = SlowStops(stop_rounds=8)  # 8 s: longer than rehome_after_s, shorter than the stop deadline
    rt.add_node("A", 8)
    controller = Controller(rt, store, CAMERAS, CONFIG, timezone="Asia/Ho_Chi_Minh")
    now = _run(controller, 0.0, 3)
    rt.add_node("B", 8)
    _run(controller, now, 60)
    load = sorted(node for node, _ in rt.running.values())
    assert load.count("A") == 4 and load.count("B") == 4, load
    assert controller.moves == 4 and controller.rehomes == 0
    assert _health_events(store) == [] and not rt.violations


def test_a_move_that_dies_midway_is_fenced_like_a_loss(store: PostgresEventStore) -> None:
    rt = SlowStops(stop_rounds=1)
    rt.add_node("A", 8)
    controller = Controller(rt, store, CAMERAS, CONFIG, timezone="Asia/Ho_Chi_Minh")
    now = _run(controller, 0.0, 3)
    epochs = {c: e for c, (_, e) in rt.running.items()}
    rt.die_on_stop = {c.id for c in CAMERAS}
    rt.add_node("B", 8)
    while controller.rehomes < 2:  # the first moves: their old actors die while stopping
        now = _run(controller, now, 1)
    rt.die_on_stop = set()  # the later moves end cleanly
    _run(controller, now, 30)
    load = sorted(node for node, _ in rt.running.values())
    assert load.count("A") == 4 and load.count("B") == 4, load
    leases = Leases(store).all()
    fenced = {cam for cam, lease in leases.items() if lease.epoch == epochs[cam] + 2}
    assert len(fenced) == controller.rehomes == 2
    for cam in CAMERAS:
        expected = (
            [(cam.id, "camera_offline", False), (cam.id, "camera_online", False)] if cam.id in fenced else []
        )
        assert _health_events(store, cam.id) == expected  # a clean move raises no event
        assert leases[cam.id].node == rt.running[cam.id][0]
    assert not rt.violations
