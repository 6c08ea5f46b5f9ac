"""The real cluster controller driving simulated nodes: placement, re-homing and rebalancing at city scale.

:class:`SimRuntime` implements :class:`cluster.controller.ClusterRuntime` with nodes that exist only
in memory: a started camera answers the next ``poll`` at once with a synthetic ``CameraReport``
(online), a node's detector answers while the node is up. What is real: the controller, the
placement, and the camera leases in PostgreSQL (one ``Leases.take`` round trip per camera start
or fence, ``Leases.seen`` once a round, the controller's ``camera_offline``/``camera_online``
events). The controller is ticked back to back on a simulated clock (``tick(now=)``, one
``poll_interval_s`` per round), so a result says both how many rounds a step took (its time on a
live cluster: rounds x the poll interval, plus what the rounds compute) and how long the rounds
computed here.

The runtime also checks what the controller must never do: start a camera that still runs
somewhere (two writers), or start one on a node that is not up.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from cluster.config import ClusterConfig
from cluster.controller import Controller, Poll
from cluster.placement import CameraSpec, spread
from cluster.reports import CameraReport, DetectorReport, NodeInfo
from events.storage.postgres import PostgresEventStore
from ingest.status import CameraState

MAX_ROUNDS = 5000  # a step that has not settled by then is reported as not settled


@dataclass
class SimRuntime:
    """In-memory nodes and camera actors for the controller (see the module)."""

    up: dict[str, NodeInfo] = field(default_factory=dict)
    silent: set[str] = field(default_factory=set)  # up in the engine's list, but not answering
    running: dict[str, tuple[str, int]] = field(default_factory=dict)  # camera -> (node, epoch)
    reports: dict[str, CameraReport] = field(default_factory=dict)
    stopping: set[str] = field(default_factory=set)  # graceful stops finished, told at the next poll
    dead: dict[str, str] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    starts: int = 0

    def add_node(self, node_id: str, capacity: int) -> None:
        self.up[node_id] = NodeInfo(node_id, f"10.0.{len(self.up) // 250}.{len(self.up) % 250}", capacity)

    def lose_node(self, node_id: str, *, silent: bool) -> None:
        """The node dies: its actors stop answering; ``silent`` leaves it in the engine's list (a
        partition, a stalled host) so that only the controller's timeout notices."""
        if silent:
            self.silent.add(node_id)
        else:
            del self.up[node_id]
        for cam, (node, _) in list(self.running.items()):
            if node == node_id:
                del self.running[cam]
                self.reports.pop(cam, None)

    # -- the ClusterRuntime protocol --------------------------------------------------------------------

    def nodes(self) -> list[NodeInfo]:
        return list(self.up.values())

    def poll(self, *, timeout_s: float) -> Poll:
        answers = Poll(
            detectors={
                n: DetectorReport(n, 0, 0, 0, 0.0, "sim", "none") for n in self.up if n not in self.silent
            },
            cameras=dict(self.reports),
            dead=self.dead,
            stopped=self.stopping,
        )
        self.dead, self.stopping = {}, set()
        return answers

    def start_camera(self, *, camera: str, node: str, epoch: int) -> None:
        self.starts += 1
        if camera in self.running:
            self.violations.append(f"{camera} started on {node} while it runs on {self.running[camera][0]}")
        if node not in self.up or node in self.silent:
            self.violations.append(f"{camera} started on {node}, which is not up")
            self.dead[camera] = "node not up"
            return
        self.running[camera] = (node, epoch)
        # The actor answers at once: online, frames flowing (a fixed report per start).
        self.reports[camera] = CameraReport(
            camera, node, epoch, CameraState.ONLINE.value, 0, 0, 0, 0, 5.0, 25.0, 0, 0
        )

    def stop_camera(self, *, camera: str, graceful: bool) -> None:
        if self.running.pop(camera, None) is not None and graceful:
            self.stopping.add(camera)
        self.reports.pop(camera, None)

    def forget_node(self, *, node: str) -> None:
        self.silent.discard(node)
        self.up.pop(node, None)

    # -- checks ------------------------------------------------------------------------------------------

    def over_capacity(self) -> dict[str, int]:
        load = Counter(node for node, _ in self.running.values())
        return {n: c for n, c in load.items() if c > self.up[n].capacity}


def city_cameras(n: int, seed: int = 7) -> list[CameraSpec]:
    """``n`` cameras in khu phố of 1 to 8 cameras (3.5 on average, about Ho Chi Minh City's 3,654
    khu phố and 1,207 ấp at 5,000 cameras between them a third of the way)."""
    rng = random.Random(seed)
    cams: list[CameraSpec] = []
    kp = 0
    while len(cams) < n:
        size = min(n - len(cams), rng.randint(1, 6))
        kp += 1
        cams += [CameraSpec(f"cam{len(cams) + i:05d}", f"kp{kp:04d}") for i in range(size)]
    return cams


@dataclass
class Step:
    rounds: int
    settled: bool
    compute_s: float  # wall time of the rounds here
    sim_s: float  # rounds x poll interval + compute: the time on a live cluster
    round_times: list[float] = field(default_factory=list)


class CityController:
    """The controller, the simulated runtime and the simulated clock (see the module)."""

    def __init__(
        self,
        store: PostgresEventStore,
        cameras: list[CameraSpec],
        *,
        nodes: int,
        capacity: int,
        config: ClusterConfig,
    ) -> None:
        self.store = store
        self.cameras = cameras
        self.capacity = capacity
        self.config = config
        self.runtime = SimRuntime()
        self.clock = 1_000.0
        self._next_node = 0
        for _ in range(nodes):
            self.add_node()
        t0 = time.perf_counter()
        self.controller = Controller(self.runtime, store, cameras, config, timezone="Asia/Ho_Chi_Minh")
        self.recover_s = time.perf_counter() - t0  # one lease and one open-events query per camera

    def add_node(self) -> str:
        node = f"node{self._next_node:04d}"
        self._next_node += 1
        self.runtime.add_node(node, self.capacity)
        return node

    def tick(self) -> float:
        t0 = time.perf_counter()
        self.controller.tick(now=self.clock)
        took = time.perf_counter() - t0
        self.clock += self.config.poll_interval_s
        return took

    def run_until(
        self, done: Any, *, min_rounds: int = 1, max_rounds: int = MAX_ROUNDS, then: int = 0
    ) -> Step:
        """Rounds until ``done()`` holds after a round (at least ``min_rounds``), then ``then`` more."""
        times: list[float] = []
        while len(times) < max_rounds:
            times.append(self.tick())
            if len(times) >= min_rounds and done():
                break
        settled = done()
        times += [self.tick() for _ in range(then if settled else 0)]
        compute = sum(times)
        return Step(len(times), settled, compute, len(times) * self.config.poll_interval_s + compute, times)

    # -- what "done" means ------------------------------------------------------------------------------

    def all_running(self) -> bool:
        return len(self.runtime.running) == len(self.cameras)

    def assignment(self) -> dict[str, str]:
        return {cam: node for cam, (node, _) in self.runtime.running.items()}

    def max_spread(self) -> int:
        return max(spread(self.assignment(), self.cameras).values(), default=0)

    def balanced(self) -> bool:
        """All running, nothing moving, and the nodes' loads within one camera of each other (where
        the placement's rebalancing stops with equal capacities)."""
        if not self.all_running() or self.runtime.stopping:
            return False
        load = Counter(self.assignment().values())
        loads = [load.get(n, 0) for n in self.runtime.up]
        return max(loads) - min(loads) <= 1


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def run_controller(
    store: PostgresEventStore,
    *,
    cameras: int,
    capacity: int,
    headroom: float,
    lose_fraction: float,
    join_fraction: float,
    steady_rounds: int,
    max_moves_per_round: int,
    poll_interval_s: float = 1.0,
    rehome_after_s: float = 5.0,
) -> dict[str, Any]:
    """Cold start, steady state, the loss of ``lose_fraction`` of the nodes (silent: found by the
    controller's timeout), then ``join_fraction`` new nodes and the rebalance."""
    specs = city_cameras(cameras)
    nodes = math.ceil(cameras / capacity / (1.0 - headroom))
    config = ClusterConfig(
        address="127.0.0.1:6379",
        poll_interval_s=poll_interval_s,
        rehome_after_s=rehome_after_s,
        max_moves_per_round=max_moves_per_round,
    )
    sim = CityController(store, specs, nodes=nodes, capacity=capacity, config=config)
    out: dict[str, Any] = {
        "cameras": cameras,
        "khu_pho": len({c.khu_pho for c in specs}),
        "nodes": nodes,
        "capacity_per_node": capacity,
        "headroom": headroom,
        "poll_interval_s": poll_interval_s,
        "rehome_after_s": rehome_after_s,
        "max_moves_per_round": max_moves_per_round,
        "recover_s": round(sim.recover_s, 3),
        # What each fence's "end what it left open" reads through (writes before: a live city's).
        "open_events_in_table": _open(store),
    }
    t0 = time.perf_counter()
    cold = sim.run_until(sim.all_running, then=1)
    out["cold_start"] = _step(cold) | {"wall_s": round(time.perf_counter() - t0, 3)}
    out["cold_start"]["max_khu_pho_per_node"] = sim.max_spread()
    out["cold_start"]["lease_takes"] = sim.runtime.starts

    steady = sim.run_until(lambda: False, max_rounds=steady_rounds) if steady_rounds else None
    if steady is not None:
        out["steady"] = {
            "rounds": steady.rounds,
            "round_p50_ms": round(1e3 * statistics.median(steady.round_times), 2),
            "round_p99_ms": round(1e3 * percentile(steady.round_times, 0.99), 2),
        }

    # Lose a tenth of the nodes, the fullest first (they hold the most cameras).
    load = Counter(sim.assignment().values())
    lost = [n for n, _ in load.most_common(max(1, round(nodes * lose_fraction)))]
    moved = sum(load[n] for n in lost)
    starts0 = sim.runtime.starts
    for node in lost:
        sim.runtime.lose_node(node, silent=True)
    t0 = time.perf_counter()
    # Then one more round: the new actors' first answers, which end the offline events.
    rehome = sim.run_until(sim.all_running, then=1)
    out["rehome"] = _step(rehome) | {
        "wall_s": round(time.perf_counter() - t0, 3),
        "nodes_lost": len(lost),
        "cameras_rehomed": moved,
        "lease_takes": sim.runtime.starts - starts0,
        "loss_to_running_s": round(rehome.sim_s, 2),
        "max_khu_pho_per_node": sim.max_spread(),
    }
    # The offline/online pairs are the controller's events: stored in PostgreSQL.
    out["rehome"]["offline_events"] = _count(store, "camera_offline")
    out["rehome"]["online_events"] = _count(store, "camera_online")

    for _ in range(max(1, round(nodes * join_fraction))):
        sim.add_node()
    moves0 = sim.controller.moves
    t0 = time.perf_counter()
    rebalance = sim.run_until(sim.balanced, min_rounds=2)
    out["rebalance"] = _step(rebalance) | {
        "wall_s": round(time.perf_counter() - t0, 3),
        "nodes_joined": max(1, round(nodes * join_fraction)),
        "moves": sim.controller.moves - moves0,
        "max_khu_pho_per_node": sim.max_spread(),
    }
    out["violations"] = sim.runtime.violations[:20]
    out["over_capacity"] = sim.runtime.over_capacity()
    out["unplaced"] = len(specs) - len(sim.runtime.running)
    sim.controller.close(timeout=5.0)
    return out


def _step(step: Step) -> dict[str, Any]:
    return {
        "rounds": step.rounds,
        "settled": step.settled,
        "compute_s": round(step.compute_s, 3),
        "sim_s": round(step.sim_s, 2),
        "round_p50_ms": round(1e3 * statistics.median(step.round_times), 2),
        "round_max_ms": round(1e3 * max(step.round_times), 2),
    }


def _open(store: PostgresEventStore) -> int:
    with store.transaction() as cur:
        cur.execute("SELECT COUNT(*) FROM events WHERE active")
        row = cur.fetchone()
    return int(row[0]) if row else 0


def _count(store: PostgresEventStore, event_type: str) -> int:
    with store.transaction() as cur:
        cur.execute("SELECT COUNT(*) FROM events WHERE type = %s", (event_type,))
        row = cur.fetchone()
    return int(row[0]) if row else 0
