"""The controller's runtime on Ray: nodes from the GCS, one detector actor per node, one actor per camera.

Placement is explicit (a hard ``NodeAffinitySchedulingStrategy`` to the node the
controller chose), and each camera actor also holds one unit of the node's
``khupho_cameras`` resource, so Ray itself never runs more cameras on a node than
it offers. Detector actors take a GPU when the node has one (``num_gpus=1``), so
``detector.providers`` with CUDA use it; on CPU nodes they take no Ray CPU (the
cameras' threads and the detector share the node as in one process).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from api.config import KhuphoConfig
from cluster.actors import CameraHost, DetectorHost
from cluster.config import CAPACITY_RESOURCE
from cluster.controller import Poll
from cluster.reports import CameraReport, DetectorReport, NodeInfo

log = logging.getLogger(__name__)

CameraActor = ray.remote(CameraHost)
DetectorActor = ray.remote(DetectorHost)
DETECTOR_CONCURRENCY = 64  # detect() calls waiting at once: several per camera on the node


@dataclass(slots=True)
class _Actor:
    handle: Any
    node: str
    asked: Any = None  # the report request in flight
    stopping: Any = None  # the graceful stop in flight


class RayRuntime:
    """Creates and watches the actors of one khupho cluster (call from the controller's thread)."""

    def __init__(self, config: KhuphoConfig, *, state_root: str) -> None:
        self.config = config
        self.state_root = state_root
        self._detectors: dict[str, _Actor] = {}
        self._cameras: dict[str, _Actor] = {}
        self._starting: dict[str, Any] = {}  # camera -> start() request in flight
        self._stopped: set[str] = set()
        self._dead: dict[str, str] = {}

    # -- nodes ----------------------------------------------------------------------------------------

    def nodes(self) -> list[NodeInfo]:
        out = []
        for n in ray.nodes():
            capacity = int(n.get("Resources", {}).get(CAPACITY_RESOURCE, 0))
            if not n.get("Alive") or capacity <= 0:
                continue
            node_id = n["NodeID"]
            out.append(
                NodeInfo(node_id, f"{n['NodeManagerAddress']}:{n.get('NodeManagerPort', '?')}", capacity)
            )
            if node_id not in self._detectors:
                self._detectors[node_id] = _Actor(
                    self._start_detector(node_id, n.get("Resources", {})), node_id
                )
        return out

    def _start_detector(self, node: str, resources: dict[str, float]) -> Any:
        return DetectorActor.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
            num_cpus=0,
            num_gpus=1 if resources.get("GPU", 0) >= 1 else 0,
            max_concurrency=DETECTOR_CONCURRENCY,
            max_restarts=0,
        ).remote(config=self.config, node=node)

    def forget_node(self, *, node: str) -> None:
        det = self._detectors.pop(node, None)
        if det is not None:
            _kill(det.handle)

    # -- cameras --------------------------------------------------------------------------------------

    def start_camera(self, *, camera: str, node: str, epoch: int) -> None:
        old = self._cameras.pop(camera, None)
        if old is not None:
            _kill(old.handle)
        detector = self._detectors.get(node)
        if detector is None:  # the controller only places on nodes this runtime listed
            raise RuntimeError(f"no detector actor on node {node}")
        handle = CameraActor.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
            num_cpus=0,
            resources={CAPACITY_RESOURCE: 1},
            max_concurrency=4,
            max_restarts=0,
        ).remote(
            camera=camera,
            config=self.config,
            epoch=epoch,
            node=node,
            detector=detector.handle,
            state_root=self.state_root,
        )
        self._cameras[camera] = _Actor(handle, node)
        self._starting[camera] = handle.start.remote()
        self._stopped.discard(camera)
        self._dead.pop(camera, None)

    def stop_camera(self, *, camera: str, graceful: bool) -> None:
        actor = self._cameras.get(camera)
        if actor is None:
            self._stopped.add(camera)
            return
        if graceful:
            if actor.stopping is None:
                actor.stopping = actor.handle.stop.remote()
            return
        self._cameras.pop(camera, None)
        self._starting.pop(camera, None)
        _kill(actor.handle)

    # -- reports --------------------------------------------------------------------------------------

    def poll(self, *, timeout_s: float) -> Poll:
        answers = Poll(stopped=self._stopped, dead=self._dead)
        self._stopped, self._dead = set(), {}
        waiting: dict[Any, tuple[str, str]] = {}  # ref -> (kind, key)
        for node, det in self._detectors.items():
            if det.asked is None:
                det.asked = det.handle.report.remote()
            waiting[det.asked] = ("detector", node)
        for camera, cam in self._cameras.items():
            if cam.stopping is not None:
                waiting[cam.stopping] = ("stop", camera)
                continue
            if cam.asked is None:
                cam.asked = cam.handle.report.remote()
            waiting[cam.asked] = ("camera", camera)
        for camera, ref in self._starting.items():
            waiting[ref] = ("start", camera)
        if not waiting:
            return answers
        ready, _ = ray.wait(list(waiting), num_returns=len(waiting), timeout=timeout_s)
        for ref in ready:
            kind, key = waiting[ref]
            try:
                value = ray.get(ref, timeout=0)
                error = None
            except (RayActorError, RayError, GetTimeoutError) as exc:
                value, error = None, _reason(exc)
            except Exception as exc:  # the actor's own exception, re-raised by ray.get
                value, error = None, _reason(exc)
            self._take(kind, key, ref, value, error, answers)
        return answers

    def _take(self, kind: str, key: str, ref: Any, value: Any, error: str | None, answers: Poll) -> None:
        if kind == "detector":
            det = self._detectors.get(key)
            if det is not None and det.asked is ref:
                det.asked = None
                if isinstance(value, DetectorReport):
                    answers.detectors[key] = value
                elif error is not None:
                    log.warning("detector on node %s: %s", key[:12], error)
            return
        cam = self._cameras.get(key)
        if kind == "start":
            if self._starting.get(key) is ref:
                del self._starting[key]
                if error is not None:
                    answers.dead[key] = error
            return
        if cam is None:
            return
        if kind == "stop":
            self._cameras.pop(key, None)
            _kill(cam.handle)
            if error is None and value is True:
                answers.stopped.add(key)  # its events ended and every batch stored
            else:
                answers.dead[key] = error or "its last event batches were not stored at stop"
                log.warning("camera %r did not stop cleanly: %s", key, answers.dead[key])
            return
        if cam.asked is ref:
            cam.asked = None
            if isinstance(value, CameraReport):
                answers.cameras[key] = value
            elif error is not None:
                answers.dead[key] = error

    def close(self) -> None:
        for actor in [*self._cameras.values(), *self._detectors.values()]:
            _kill(actor.handle)
        self._cameras.clear()
        self._detectors.clear()


def _kill(handle: Any) -> None:
    try:
        ray.kill(handle, no_restart=True)
    except Exception as exc:  # already gone, or its node is: nothing left to stop
        log.debug("kill: %s", exc)


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"
