"""The controller: every enabled camera runs on exactly one live node, and moves when its node dies.

Each round (``cluster.poll_interval_s``) it asks the runtime which nodes are
alive, collects the reports of the nodes' detector actors and of the camera
actors, and then:

- A node whose detector has not answered for ``rehome_after_s`` (or that the
  engine dropped) is lost; so is a camera actor that died or stopped answering.
  Each of their cameras is first **fenced** (its lease epoch is raised in
  PostgreSQL, so the old actor's batches are refused from then on even if it is
  still running somewhere), then its open events are ended as ``interrupted``
  at the last time its actor answered, and a ``camera_offline`` event starts.
- Unplaced cameras are placed (``cluster/placement.py``) on nodes whose
  detector has answered at least once, each with a fresh lease; when a node
  joins and others are above their fair share, up to ``max_moves_per_round``
  cameras are moved gracefully (the old actor ends its events and stops first).
- A camera that was offline and reports frames again gets its
  ``camera_offline`` ended and a ``camera_online`` event.

What a lost node had in flight is lost with it: per camera, the frames in its
decode queue (``queue_size``, 4) and the one being analysed, plus event batches
its writer had not stored yet (milliseconds' worth with a healthy database).

The runtime is a Protocol: Ray in production (``cluster/ray_runtime.py``),
simulated nodes in the city-scale benchmark.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from cluster.config import ClusterConfig
from cluster.leases import Leases
from cluster.placement import CameraSpec, NodeSpec, plan
from cluster.reports import CameraReport, DetectorReport, NodeInfo
from events.camera_health import CameraHealthEvents
from events.model import EventTransition
from events.storage.postgres import PostgresEventStore
from events.storage.store import StorageError
from ingest.status import CameraState
from pipeline.recovery import end_interrupted

log = logging.getLogger(__name__)

START_TIMEOUT_S = 120.0  # a camera actor that never answers (cannot start) is retried after this
RETRY_INITIAL_S = 2.0
RETRY_MAX_S = 60.0
LANE_MINUTES_KEPT = 60  # recent lane minutes per camera, for API processes that (re)start
STOP_TIMEOUT_S = 10.0  # a graceful move waits this long for the old actor to end its events
# At a cold start, nodes whose detector is still loading are waited for this long, so the first
# placement is already spread instead of filling the first ready node and then rebalancing.
JOIN_GRACE_S = 30.0


@dataclass(slots=True)
class Poll:
    """One round of answers from the actors."""

    detectors: dict[str, DetectorReport] = field(default_factory=dict)  # node -> report
    cameras: dict[str, CameraReport] = field(default_factory=dict)  # camera -> report
    dead: dict[str, str] = field(default_factory=dict)  # camera -> why its actor is gone
    stopped: set[str] = field(default_factory=set)  # cameras whose graceful stop finished


class ClusterRuntime(Protocol):
    """What the controller drives. Calls return at once (actors start and stop in the background)."""

    def nodes(self) -> list[NodeInfo]:
        """Nodes the engine reports alive that offer camera capacity (each gets a detector actor)."""
        ...

    def poll(self, *, timeout_s: float) -> Poll:
        """Reports that arrived within ``timeout_s``; an actor with a request still out is not asked
        again, so a stalled one simply stops answering."""
        ...

    def start_camera(self, *, camera: str, node: str, epoch: int) -> None: ...

    def stop_camera(self, *, camera: str, graceful: bool) -> None:
        """``graceful``: the actor ends its events and stops; ``Poll.stopped`` says when it did with
        everything stored, ``Poll.dead`` when it did not. Else it is killed."""
        ...

    def forget_node(self, *, node: str) -> None:
        """The node is lost: drop its detector actor."""
        ...


@dataclass(slots=True)
class _Camera:
    spec: CameraSpec
    node: str | None = None
    epoch: int = 0
    started: float = 0.0  # monotonic
    last_ok: float | None = None  # monotonic time of its last report
    last_ok_wall: float | None = None
    report: CameraReport | None = None
    moving_to: str | None = None  # graceful move in progress
    stop_deadline: float = 0.0
    retry_at: float = 0.0
    retry_delay: float = RETRY_INITIAL_S
    last_error: str | None = None
    health: CameraHealthEvents | None = None  # open camera_offline after a loss
    lanes_minutes: deque[Any] = field(default_factory=lambda: deque(maxlen=LANE_MINUTES_KEPT))


@dataclass(slots=True)
class _Node:
    info: NodeInfo
    first_seen: float
    last_ok: float | None = None
    report: DetectorReport | None = None
    # When one of its camera actors became unreachable: no camera is placed on the node until its
    # detector answers again (the node may be dying; the engine takes longer to say so).
    suspect_since: float | None = None

    def ready(self) -> bool:
        return self.last_ok is not None and (self.suspect_since is None or self.last_ok > self.suspect_since)


class Controller:
    """Places cameras on nodes and keeps them there; thread-safe ``status()``."""

    def __init__(
        self,
        runtime: ClusterRuntime,
        store: PostgresEventStore,
        cameras: Iterable[CameraSpec],
        config: ClusterConfig,
        *,
        timezone: str,
    ) -> None:
        self.runtime = runtime
        self.store = store
        self.leases = Leases(store)
        self.config = config
        self.timezone = timezone
        self._cameras = {c.id: _Camera(c) for c in cameras}
        self._nodes: dict[str, _Node] = {}
        self._lost: set[str] = set()  # nodes declared lost that the engine still lists
        self._lock = threading.Lock()
        self._pending: list[EventTransition] = []  # controller events not yet given a batch
        self._unsent: list[tuple[str, list[EventTransition]]] = []  # batches the store has not taken yet
        self._batch_seq = itertools.count(1)
        self._run = secrets.token_hex(4)
        self.rehomes = 0
        self.moves = 0
        self.rounds = 0
        self.last_round_s = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._first_round: float | None = None
        self._recover()

    # -- lifecycle -------------------------------------------------------------------------------------

    def _recover(self) -> None:
        """A (re)started controller owns no actors yet: every camera's earlier writer is fenced off and
        what it left open ends at the last time it was seen."""
        leases = self.leases.all()
        self.leases.take_many(dict.fromkeys(self._cameras, "-"))  # one statement for the whole city
        for cam_id in self._cameras:
            lease = leases.get(cam_id)
            last = None if lease is None else datetime.fromtimestamp(lease.seen_us / 1e6, UTC)
            self._end_open(cam_id, last)

    def start(self) -> Controller:
        self._thread = threading.Thread(target=self._loop, name="cluster-controller", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout: float = 30.0) -> None:
        """Stop placing, stop every camera gracefully (their open events end), then return."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            running = [c for c in self._cameras.values() if c.node is not None]
        for cam in running:
            self.runtime.stop_camera(camera=cam.spec.id, graceful=True)
        deadline = time.monotonic() + min(timeout, STOP_TIMEOUT_S * 2)
        left = {c.spec.id for c in running}
        while left and time.monotonic() < deadline:
            answers = self.runtime.poll(timeout_s=0.5)
            left -= answers.stopped | set(answers.dead)
        for cam_id in left:
            log.warning("camera %r did not stop in time: killed", cam_id)
            self.runtime.stop_camera(camera=cam_id, graceful=False)
        self._flush_events()

    def _loop(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                self.tick()
            except Exception:  # one bad round (a database hiccup) must not end the control loop
                log.exception(
                    "cluster controller round failed; next round in %.1f s", self.config.poll_interval_s
                )
            self._stop.wait(max(0.0, self.config.poll_interval_s - (time.monotonic() - t0)))

    # -- one round -------------------------------------------------------------------------------------

    def tick(self, now: float | None = None) -> None:
        t0 = time.perf_counter()
        now = time.monotonic() if now is None else now
        alive = {n.id: n for n in self.runtime.nodes()}
        answers = self.runtime.poll(timeout_s=min(0.5, self.config.poll_interval_s / 2))
        with self._lock:
            self._update_nodes(alive, answers, now)
            self._update_cameras(answers, now)
            lost_nodes = self._lost_nodes(alive, now)
            self._hand_back_lost(lost_nodes, answers, now)
            self._finish_moves(answers, now)
            self._place(now)
            self._mark_online()
            seen = [
                c
                for c, r in answers.cameras.items()
                if c in self._cameras and r.epoch == self._cameras[c].epoch
            ]
        try:
            self.leases.seen(seen)
        except StorageError as exc:
            log.warning("cluster leases not refreshed: %s", exc)
        self._flush_events()
        self.rounds += 1
        self.last_round_s = time.perf_counter() - t0

    def _update_nodes(self, alive: dict[str, NodeInfo], answers: Poll, now: float) -> None:
        self._lost &= set(alive)  # forgotten once the engine drops them too
        for node_id, info in alive.items():
            node = self._nodes.get(node_id)
            if node is None and node_id in self._lost:
                if node_id not in answers.detectors:
                    continue  # lost, and the engine has not noticed yet: back only if its detector answers
                self._lost.discard(node_id)
            if node is None:
                node = self._nodes[node_id] = _Node(info, first_seen=now)
                log.info("node %s (%s) joined with capacity %d", node_id[:12], info.address, info.capacity)
            node.info = info
        for node_id, report in answers.detectors.items():
            if node_id in self._nodes:
                self._nodes[node_id].last_ok = now
                self._nodes[node_id].report = report

    def _update_cameras(self, answers: Poll, now: float) -> None:
        for cam_id, report in answers.cameras.items():
            cam = self._cameras.get(cam_id)
            if cam is None or report.epoch != cam.epoch:
                continue  # an answer from an actor already replaced
            cam.last_ok, cam.last_ok_wall, cam.report = now, time.time(), report
            cam.lanes_minutes.extend(report.lanes_minutes)
            cam.retry_delay = RETRY_INITIAL_S

    def _lost_nodes(self, alive: dict[str, NodeInfo], now: float) -> set[str]:
        lost = set()
        for node_id, node in list(self._nodes.items()):
            gone = node_id not in alive
            silent = node.last_ok is not None and now - node.last_ok > self.config.rehome_after_s
            if gone or silent:
                lost.add(node_id)
                self._lost.add(node_id)
                del self._nodes[node_id]
                log.error(
                    "node %s (%s) lost (%s): its cameras move to the others",
                    node_id[:12],
                    node.info.address,
                    "left the cluster" if gone else f"silent for {now - (node.last_ok or now):.1f} s",
                )
                self.runtime.forget_node(node=node_id)
        return lost

    def _hand_back_lost(self, lost_nodes: set[str], answers: Poll, now: float) -> None:
        for cam in self._cameras.values():
            if cam.node is None:
                continue
            cam_id = cam.spec.id
            why = None
            if cam.node in lost_nodes:
                why = f"node {cam.node[:12]} lost"
            elif cam_id in answers.dead and cam.moving_to is None:
                why = f"actor died: {answers.dead[cam_id]}"
            elif (
                cam.moving_to is None  # a graceful stop answers no reports: its deadline covers it
                and cam.last_ok is not None
                and now - cam.last_ok > self.config.rehome_after_s
            ):
                why = f"actor silent for {now - cam.last_ok:.1f} s"
            elif cam.last_ok is None and now - cam.started > START_TIMEOUT_S:
                why = f"actor did not start within {START_TIMEOUT_S:.0f} s"
            if why is None:
                continue
            log.error(
                "camera %r on node %s: %s; fencing it off and placing it again", cam_id, cam.node[:12], why
            )
            self.runtime.stop_camera(camera=cam_id, graceful=False)
            self._fence(cam, why)
            actor_failed = cam.node not in lost_nodes and cam_id in answers.dead
            if actor_failed and cam.node in self._nodes:
                self._nodes[cam.node].suspect_since = now
            cam.node, cam.moving_to, cam.report = None, None, None
            cam.last_error = why
            if actor_failed:
                # The actor itself failed (a camera that cannot open, a crash): back off before retrying.
                cam.retry_at = now + cam.retry_delay
                cam.retry_delay = min(RETRY_MAX_S, cam.retry_delay * 2)
            self.rehomes += 1

    def _fence(self, cam: _Camera, why: str) -> None:
        """Raise the camera's epoch (the old actor can no longer write), end what it left open, and
        start its ``camera_offline`` event (ended when the camera runs again)."""
        cam_id = cam.spec.id
        cam.epoch = self.leases.take(cam_id, "-")
        last = datetime.fromtimestamp(cam.last_ok_wall, UTC) if cam.last_ok_wall is not None else None
        self._end_open(cam_id, last, keep=cam.health.open_ids() if cam.health is not None else ())
        if cam.health is None:
            cam.health = CameraHealthEvents(cam_id, self.timezone)
            self._pending += cam.health.status_changed(
                old=CameraState.ONLINE, new=CameraState.OFFLINE, error=why
            )

    def _end_open(self, camera: str, last_alive: datetime | None, keep: Collection[str] = ()) -> None:
        end_interrupted(self.store, last_alive, camera=camera, keep=keep)

    def _finish_moves(self, answers: Poll, now: float) -> None:
        """Graceful moves whose old actor has stopped (or ran out of time) start on their new node."""
        for cam in self._cameras.values():
            if cam.moving_to is None:
                continue
            clean = cam.spec.id in answers.stopped  # ended its events and stored everything
            done = clean or cam.spec.id in answers.dead
            if not done and now < cam.stop_deadline:
                continue
            if not done:
                self.runtime.stop_camera(camera=cam.spec.id, graceful=False)
            if not clean:
                # The old actor died or timed out mid-stop: what it left is handled as after a loss.
                why = answers.dead.get(cam.spec.id, f"did not stop within {STOP_TIMEOUT_S:.0f} s")
                log.error(
                    "camera %r: move from node %s not clean (%s)", cam.spec.id, (cam.node or "-")[:12], why
                )
                self._fence(cam, f"move not clean: {why}")
                self.rehomes += 1
            dest, cam.moving_to = cam.moving_to, None
            cam.node = None
            if dest in self._nodes:
                self._start(cam, dest, now)

    def _place(self, now: float) -> None:
        if self._first_round is None:
            self._first_round = now
        loading = any(n.last_ok is None and now - n.first_seen < JOIN_GRACE_S for n in self._nodes.values())
        if loading and now - self._first_round < JOIN_GRACE_S:
            return
        current = {c.spec.id: c.moving_to or c.node for c in self._cameras.values() if c.node is not None}
        held = Counter(current.values())
        # A suspect node keeps the cameras it runs (capacity = what it holds) but gets no new one.
        nodes = [
            NodeSpec(n.info.id, n.info.capacity if n.ready() else min(n.info.capacity, held[n.info.id]))
            for n in self._nodes.values()
            if n.last_ok is not None
        ]
        waiting = {c.spec.id for c in self._cameras.values() if c.node is None and c.retry_at > now}
        placeable = [c.spec for c in self._cameras.values() if c.spec.id not in waiting]
        moving = any(c.moving_to is not None for c in self._cameras.values())
        suspect = any(n.last_ok is not None and not n.ready() for n in self._nodes.values())
        result = plan(
            placeable,
            nodes,
            current,
            # Rebalance only while nothing moves, no node is suspect and every placeable camera runs
            # (a camera in retry backoff does not hold it up).
            max_moves=0
            if moving or suspect or any(c.id not in current for c in placeable)
            else self.config.max_moves_per_round,
        )
        starts = {c: n for c, n in result.assignment.items() if self._cameras[c].node is None}
        epochs = self.leases.take_many(starts)  # one statement for every camera starting this round
        for cam_id, node in result.assignment.items():
            cam = self._cameras[cam_id]
            if cam_id in starts:
                self._start(cam, node, now, epoch=epochs[cam_id])
            elif cam.moving_to is None and cam.node != node:
                log.info("camera %r moves from node %s to %s (rebalance)", cam_id, cam.node[:12], node[:12])
                self.runtime.stop_camera(camera=cam_id, graceful=True)
                cam.moving_to, cam.stop_deadline = node, now + STOP_TIMEOUT_S
                self.moves += 1

    def _start(self, cam: _Camera, node: str, now: float, *, epoch: int | None = None) -> None:
        """Start ``cam`` on ``node`` under a new lease (``epoch``: already taken for it)."""
        cam.epoch = self.leases.take(cam.spec.id, node) if epoch is None else epoch
        cam.node, cam.started, cam.last_ok, cam.report = node, now, None, None
        self.runtime.start_camera(camera=cam.spec.id, node=node, epoch=cam.epoch)
        log.info("camera %r starts on node %s (epoch %d)", cam.spec.id, node[:12], cam.epoch)

    def _mark_online(self) -> None:
        for cam in self._cameras.values():
            if (
                cam.health is not None
                and cam.report is not None
                and cam.report.state == CameraState.ONLINE.value
            ):
                self._pending += cam.health.status_changed(
                    old=CameraState.OFFLINE, new=CameraState.ONLINE, error=cam.last_error
                )
                cam.health = None

    def _flush_events(self) -> None:
        """Store the controller's events; a batch that failed keeps its id, so a retry of one that
        did commit (the reply lost) is a no-op and nothing is notified twice."""
        with self._lock:
            if self._pending:
                self._unsent.append((f"controller-{self._run}:{next(self._batch_seq)}", self._pending))
                self._pending = []
            unsent = list(self._unsent)
        for batch_id, transitions in unsent:
            try:
                self.store.apply_batch(transitions, (), batch_id=batch_id)
            except StorageError as exc:
                log.warning("controller events not stored yet (%d batches): %s", len(unsent), exc)
                return
            with self._lock:
                self._unsent.remove((batch_id, transitions))

    # -- what operators see ----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Nodes, cameras per node, capacity used, detector queue depths (``khupho cluster status``)."""
        now = time.monotonic()
        with self._lock:
            nodes = []
            for node in sorted(self._nodes.values(), key=lambda n: n.info.address + n.info.id):
                cams = sorted(c.spec.id for c in self._cameras.values() if c.node == node.info.id)
                det = node.report
                nodes.append(
                    {
                        "id": node.info.id,
                        "address": node.info.address,
                        "capacity": node.info.capacity,
                        "cameras": cams,
                        "used": len(cams) / node.info.capacity if node.info.capacity else 0.0,
                        "ready": node.last_ok is not None,
                        "last_answer_s": None if node.last_ok is None else round(now - node.last_ok, 2),
                        "detector": None
                        if det is None
                        else {
                            "queue_depth": det.queue_depth,
                            "batches": det.batches,
                            "images": det.images,
                            "seconds": round(det.seconds, 3),
                            "runtime": det.runtime,
                            "precision": det.precision,
                        },
                    }
                )
            cameras = []
            for cam in sorted(self._cameras.values(), key=lambda c: c.spec.id):
                rep = cam.report
                cameras.append(
                    {
                        "id": cam.spec.id,
                        "khu_pho": cam.spec.khu_pho,
                        "node": cam.node,
                        "epoch": cam.epoch,
                        "moving_to": cam.moving_to,
                        "state": rep.state if rep is not None else ("starting" if cam.node else "unplaced"),
                        "report": None if rep is None else rep.as_dict(),
                        "last_error": cam.last_error,
                    }
                )
            fresh = 2 * self.config.poll_interval_s + 0.5
            traffic = {
                cam.spec.id: {
                    # Lane states only while the camera answers: a silent camera's lanes go stale.
                    "live": list(cam.report.lanes_live)
                    if cam.report is not None and cam.last_ok is not None and now - cam.last_ok <= fresh
                    else [],
                    "minutes": list(cam.lanes_minutes),
                }
                for cam in self._cameras.values()
                if cam.lanes_minutes or (cam.report is not None and cam.report.lanes_live)
            }
            return {
                "traffic": traffic,
                "nodes": nodes,
                "cameras": cameras,
                "unplaced": [c["id"] for c in cameras if c["node"] is None],
                "rehomes": self.rehomes,
                "moves": self.moves,
                "rounds": self.rounds,
                "last_round_s": round(self.last_round_s, 4),
            }
