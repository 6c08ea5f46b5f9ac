"""What runs inside the Ray actors: one camera's pipeline, and a node's batched detector.

Plain classes (``cluster/ray_runtime.py`` makes them actors), so they can be read
and tested without Ray. A camera actor is the single-process service's camera
worker with its own event writer and upload spool; its detector is the node's
detector actor, which batches the frames of every camera on the node.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import supervision as sv

from api.config import KhuphoConfig
from cluster.leases import FencedStore, batch_prefix
from cluster.reports import CameraReport, DetectorReport
from detectors import open_detector
from detectors.batcher import InferenceBatcher
from events.lanes import CameraTraffic, LaneLive, LaneMinute, TrafficOutput
from events.model import EventTransition
from events.storage import EventBus, open_event_store, open_object_store
from events.storage.config import PostgresStoreConfig, open_snapshot_writer, open_upload_spool
from events.storage.postgres import PostgresEventStore
from models import resolve_model
from pipeline import CameraWorker, EventSink
from pipeline.clips import ClipRecorder

log = logging.getLogger(__name__)

LANE_MINUTES_KEPT = 120  # lane minutes held for the controller's next report (it asks every second)
CAMERA_DB_CONNECTIONS = 2  # the writer and the spool's media links; the API has its own pool


class DetectorHost:
    """A node's detector: every camera actor on the node sends its frames here, one batch per call.

    Runs as a threaded actor: each ``detect`` call waits in its own thread for the batch its picture
    went into, so concurrent calls from several cameras fill one batch."""

    def __init__(self, *, config: KhuphoConfig, node: str) -> None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.node = node
        self.detector = open_detector(resolve_model(None, config.detector.model), config.detector)
        self._lock = threading.Lock()
        self.batches = 0
        self.images = 0
        self.seconds = 0.0
        self.batcher = InferenceBatcher(
            self.detector, max_wait_ms=config.batching.max_wait_ms, on_batch=self._count
        )
        log.info(
            "detector on node %s: %s, %s %s, batches up to %d",
            node[:12],
            self.detector.path.name,
            self.detector.runtime,
            self.detector.precision,
            self.batcher.max_batch,
        )

    def _count(self, *, batch_size: int, seconds: float) -> None:
        with self._lock:
            self.batches += 1
            self.images += batch_size
            self.seconds += seconds

    def detect(self, source: str, image: np.ndarray) -> sv.Detections:
        return self.batcher.submit(source, image).result()

    def report(self) -> DetectorReport:
        with self._lock:
            return DetectorReport(
                node=self.node,
                queue_depth=self.batcher.queue_depth(),
                batches=self.batches,
                images=self.images,
                seconds=self.seconds,
                runtime=self.detector.runtime,
                precision=self.detector.precision,
            )

    def close(self) -> None:
        self.batcher.close(timeout=5.0)


class RemoteDetector:
    """The node's detector actor as a camera worker's ``DetectorQueue``."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    def submit(self, source: str, image: np.ndarray) -> Future[sv.Detections]:
        return self.actor.detect.remote(source, image).future()


class _Counters:
    """The camera actor's ``PipelineObserver``: counts reported to the controller."""

    def __init__(self) -> None:
        self.analysed = 0
        self.dropped = 0
        self.stored = 0
        self.up = False

    def frame_analysed(self, *, camera: str, n: int = 1) -> None:
        self.analysed += n

    def frame_dropped(self, *, camera: str, reason: str, n: int = 1) -> None:
        self.dropped += n

    def set_camera_up(self, *, camera: str, up: bool) -> None:
        self.up = up

    def observe_event_latency(self, *, seconds: float) -> None:
        pass

    def event_transition(self, *, transition: EventTransition) -> None:
        self.stored += 1


class CameraHost:
    """One camera on one node, writing under its lease epoch (``cluster/leases.py``).

    Its writer's journal and upload spool are in ``state_root/cameras/<camera>`` on the node; a
    journal left there by an earlier actor of the camera is stored first if its epoch is still
    current, else set aside (its open events were ended by the controller)."""

    def __init__(
        self, *, camera: str, config: KhuphoConfig, epoch: int, node: str, detector: Any, state_root: str
    ) -> None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        from api.service import ClipToSpool, face_redactor  # the single-process service's own parts

        self.camera, self.epoch, self.node = camera, epoch, node
        cam = config.cameras[camera]
        db = config.storage.database
        if not isinstance(db, PostgresStoreConfig):
            raise ValueError("cluster mode needs storage.database.type: postgres")
        state = Path(state_root) / "cameras" / camera
        state.mkdir(parents=True, exist_ok=True)
        store = open_event_store(
            db.model_copy(update={"pool_size": CAMERA_DB_CONNECTIONS}),
            notify_feed=True,  # the API processes' live feed (events/storage/pg_feed.py)
        )
        assert isinstance(store, PostgresEventStore)
        self.store = store
        self.objects = open_object_store(config.storage.objects)
        self.uploads = open_upload_spool(self.objects, state / "spool", config.storage.spool, store=store)
        snap = config.storage.snapshots
        self.snapshots = open_snapshot_writer(
            self.uploads,
            snap,
            redactor=face_redactor(config, resolve_model(None, config.detector.model).parent)
            if snap.enabled
            else None,
        )
        self.counters = _Counters()
        self.sink = EventSink(
            FencedStore(self.store, camera, epoch),  # type: ignore[arg-type]
            EventBus(),  # nobody listens here: the API processes follow the database's feed
            self.snapshots,
            observer=self.counters,
            journal_dir=state,
            batch_prefix=batch_prefix(camera, epoch),
        )
        self.clips = ClipRecorder(upload=ClipToSpool(self.uploads)) if cam.clips.enabled else None
        traffic = (
            CameraTraffic(camera, cam.traffic, config.traffic.congestion, ZoneInfo(config.events.timezone))
            if cam.traffic is not None
            else None
        )
        self._lanes_lock = threading.Lock()
        self._lanes_live: list[LaneLive] = []
        self._lanes_minutes: deque[LaneMinute] = deque(maxlen=LANE_MINUTES_KEPT)
        self.worker = CameraWorker(
            camera,
            cam,
            batcher=RemoteDetector(detector),
            sink=self.sink,
            observer=self.counters,
            timezone=config.events.timezone,
            clips=self.clips,
            traffic=traffic,
            on_traffic=self._keep_lanes if traffic is not None else None,
        )
        self.started = time.time()

    def start(self) -> None:
        self.sink.start()
        self.uploads.start()
        if self.snapshots is not None:
            self.snapshots.start()
        if self.clips is not None:
            self.clips.start()
        self.worker.start()
        log.info("camera %r running on node %s (epoch %d)", self.camera, self.node[:12], self.epoch)

    def _keep_lanes(self, *, camera: str, output: TrafficOutput) -> None:
        with self._lanes_lock:
            if output.live:
                self._lanes_live = list(output.live)
            self._lanes_minutes.extend(output.minutes)

    def report(self) -> CameraReport:
        st = self.worker.status()
        with self._lanes_lock:
            live, self._lanes_live = tuple(self._lanes_live), []
            minutes = tuple(self._lanes_minutes)
            self._lanes_minutes.clear()
        return CameraReport(
            camera=self.camera,
            node=self.node,
            epoch=self.epoch,
            state=st.state.value,
            analysed=self.counters.analysed,
            decoded=self.worker.source.stats.decoded,
            dropped=st.dropped_frames + self.counters.dropped,
            reconnects=st.reconnects,
            analysed_fps=round(st.analysed_fps, 2),
            source_fps=round(st.source_fps, 2),
            stored_batches=self.sink.stored_batches,
            backlog=self.sink.backlog,
            last_error=st.last_error,
            lanes_live=live,
            lanes_minutes=minutes,
        )

    def stop(self, timeout: float = 8.0) -> bool:
        """End the camera's open events and store what is pending (a graceful move or shutdown)."""
        started = time.monotonic()

        def left() -> float:
            return max(0.5, timeout - (time.monotonic() - started))

        self.worker.stop(timeout=left())
        if self.clips is not None:
            self.clips.close(timeout=left())
        stored = self.sink.close(timeout=left())
        if self.snapshots is not None:
            self.snapshots.close(timeout=left())
        self.uploads.close(timeout=left())
        self.store.close()
        self.objects.close()
        log.info("camera %r stopped on node %s (epoch %d)", self.camera, self.node[:12], self.epoch)
        return stored
