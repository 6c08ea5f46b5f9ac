"""Joining a khupho cluster: the controller actor, and what API processes and the CLI ask of it.

The controller runs in one **detached, named** Ray actor (``khupho-controller`` in
the configured namespace), created by the first ``khupho run`` that finds none.
It owns the camera and detector actors, so it outlives any API process: every
``khupho run`` with the same ``cluster:`` section is one more stateless API
replica, and stopping one never stops a camera. ``khupho cluster stop`` stops
the cameras (their open events end) and removes the controller.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from api.config import KhuphoConfig
from cluster.config import ClusterConfig
from events.lanes import TrafficOutput, TrafficReport

log = logging.getLogger(__name__)

CONTROLLER_NAME = "khupho-controller"


class ControllerHost:
    """The controller actor: the control loop in a thread, ``status()`` and ``stop()`` for callers."""

    def __init__(self, *, config: KhuphoConfig, state_root: str) -> None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        from cluster.controller import Controller
        from cluster.placement import CameraSpec
        from cluster.ray_runtime import RayRuntime
        from events.storage.config import open_event_store
        from events.storage.postgres import PostgresEventStore

        assert config.cluster is not None
        # notify_feed: the controller's camera_offline/online events reach the live feed too.
        store = open_event_store(config.storage.database, notify_feed=True)
        assert isinstance(store, PostgresEventStore)  # the config checks it
        self.store = store
        self.runtime = RayRuntime(config, state_root=state_root)
        cameras = [CameraSpec(cam_id, cam.khu_pho) for cam_id, cam in config.cameras.items() if cam.enabled]
        self.controller = Controller(
            self.runtime, store, cameras, config.cluster, timezone=config.events.timezone
        ).start()

    def status(self) -> dict[str, Any]:
        return self.controller.status()

    def stop(self) -> None:
        self.controller.close()
        self.runtime.close()
        self.store.close()


def connect(cluster: ClusterConfig) -> None:
    """Join the Ray cluster as a driver (idempotent)."""
    import ray

    if ray.is_initialized():
        return
    ray.init(
        address=cluster.address,
        namespace=cluster.namespace,
        _node_ip_address=cluster.node_ip_address,
        log_to_driver=False,
        logging_level=logging.WARNING,
    )


def ensure_controller(config: KhuphoConfig) -> Any:
    """The cluster's controller actor, created on this process's node if there is none yet."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    assert config.cluster is not None
    connect(config.cluster)
    state_root = str(Path(config.storage.local_state_dir).resolve())
    return (
        ray.remote(ControllerHost)
        .options(
            name=CONTROLLER_NAME,
            lifetime="detached",
            get_if_exists=True,
            num_cpus=0,
            max_concurrency=4,
            max_restarts=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(
                ray.get_runtime_context().get_node_id(), soft=False
            ),
        )
        .remote(config=config, state_root=state_root)
    )


def find_controller(cluster: ClusterConfig) -> Any | None:
    import ray

    connect(cluster)
    try:
        return ray.get_actor(CONTROLLER_NAME, namespace=cluster.namespace)
    except ValueError:
        return None


def cluster_status(cluster: ClusterConfig, timeout_s: float = 10.0) -> dict[str, Any] | None:
    """The controller's status, or None when no controller runs."""
    import ray

    handle = find_controller(cluster)
    return None if handle is None else ray.get(handle.status.remote(), timeout=timeout_s)


def stop_cluster(cluster: ClusterConfig, timeout_s: float = 60.0) -> bool:
    """Stop every camera (their open events end) and remove the controller; False if none ran."""
    import ray

    handle = find_controller(cluster)
    if handle is None:
        return False
    try:
        ray.get(handle.stop.remote(), timeout=timeout_s)
    finally:
        ray.kill(handle, no_restart=True)
    return True


class ClusterWatch:
    """An API process's view of the cluster: the controller's status, read once a second in the
    background (scrapes and the camera pages never wait on Ray)."""

    def __init__(self, config: KhuphoConfig) -> None:
        assert config.cluster is not None
        self.config = config
        self.controller: Any = None
        # The traffic board of this API process (signage, /public/traffic): fed the cluster's lanes.
        self.on_traffic: TrafficReport | None = None
        self._minutes_seen: dict[str, Any] = {}  # "camera/lane" -> the last minute handed over
        self._status: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cluster-watch", daemon=True)

    def start(self) -> ClusterWatch:
        self.controller = ensure_controller(self.config)
        self._thread.start()
        return self

    def status(self) -> dict[str, Any] | None:
        return self._status

    def _run(self) -> None:
        import ray

        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                self._status = ray.get(self.controller.status.remote(), timeout=5.0)
                self._relay_traffic(self._status.get("traffic", {}))
            except Exception as exc:  # the controller restarting, the head busy: keep the last view
                log.warning("cluster status unavailable: %s", exc)
                try:
                    self.controller = ensure_controller(self.config)
                except Exception as again:
                    log.warning("cluster controller unreachable: %s", again)
            self._stop.wait(max(0.0, 1.0 - (time.monotonic() - t0)))

    def _relay_traffic(self, traffic: dict[str, dict[str, list[Any]]]) -> None:
        if self.on_traffic is None:
            return
        for camera, lanes in traffic.items():
            minutes = []
            for minute in lanes["minutes"]:
                key = f"{camera}/{minute.lane}"
                if key not in self._minutes_seen or minute.minute > self._minutes_seen[key]:
                    self._minutes_seen[key] = minute.minute
                    minutes.append(minute)
            if minutes or lanes["live"]:
                self.on_traffic(camera=camera, output=TrafficOutput([], [], minutes, lanes["live"]))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(3.0)
