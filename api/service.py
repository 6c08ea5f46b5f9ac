"""``khupho run``: ingest, detection, tracking, rules, storage and the API in one process."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import uvicorn

from api.app import create_app
from api.auth import ScopeIndex
from api.auth.db import open_security_db
from api.auth.security import Security
from api.config import KhuphoConfig
from api.metrics import KhuphoMetrics
from api.reports.install import default_desk
from api.review.feeder import ReviewFeeder
from cluster.client import ClusterWatch
from cluster.leader import Leadership
from detectors import open_detector
from detectors.batcher import InferenceBatcher
from events.congestion import TrafficBoard
from events.lanes import CameraTraffic
from events.publish.mqtt import MqttPublisher
from events.publish.webhooks import WebhookSender
from events.redaction import FaceRedactor
from events.storage import EventBus, open_event_store, open_object_store
from events.storage.config import open_snapshot_writer, open_upload_spool
from events.storage.pg_feed import PgFeedListener
from events.storage.retention import RetentionJob
from events.storage.spool import UploadSpool
from events.storage.store import EventStore
from ingest.status import RateMeter
from models import resolve_model
from models.resolve import model_dirs
from pipeline import CameraWorker, EventSink
from pipeline.clips import ClipRecorder
from pipeline.recovery import Heartbeat, end_interrupted

log = logging.getLogger(__name__)


@dataclass
class _Counters:
    """A camera's cumulative counters as last copied into the metrics."""

    decoded: int = 0
    dropped: int = 0
    reconnects: int = 0
    decoded_rate: RateMeter = field(default_factory=RateMeter)


@dataclass(frozen=True, slots=True)
class ClipToSpool:
    """The clip recorder's uploader: clips go through the upload spool as snapshots do (stored now,
    or kept on disk and retried while the object store is down), linked to their event with
    ``set_clip`` once stored. Security events' clips are evidence: the last media a full spool drops."""

    uploads: UploadSpool

    def __call__(self, *, key: str, data: bytes, content_type: str, event_id: str) -> None:
        self.uploads.put(
            key=key,
            data=data,
            content_type=content_type,
            metadata={"event-id": event_id},
            link={"kind": "clip", "event_id": event_id},
            evidence=True,
        )


class Service:
    """Builds every component from the config, runs the cameras, serves the API.

    Start-up fails fast with a clear message (bad model, unreachable S3, wrong
    secret); a camera that cannot be opened is reported in its status and
    retried, and never stops the others.
    """

    def __init__(self, config: KhuphoConfig, model_flag: str | None = None) -> None:
        self.config = config
        self.metrics = KhuphoMetrics()
        # Cluster mode: the cameras run in Ray actors placed by the cluster's controller; this process
        # serves the API from the shared database (one of any number of replicas).
        self.cluster = ClusterWatch(config) if config.cluster is not None else None
        if self.cluster is not None:
            self.metrics.watch_cluster(self.cluster.status)
        self.store = open_event_store(config.storage.database)
        self.objects = open_object_store(config.storage.objects)
        self.bus = EventBus()
        state_dir = config.storage.local_state_dir
        self.uploads = open_upload_spool(
            self.objects, state_dir / "spool", config.storage.spool, store=self.store
        )
        self.metrics.watch_spool(self.uploads)
        snap = config.storage.snapshots
        model_path = resolve_model(model_flag, config.detector.model)
        redactor = (
            face_redactor(config, model_path.parent) if snap.enabled or config.reports.enabled else None
        )
        self.snapshots = open_snapshot_writer(self.uploads, snap, redactor=redactor)
        if self.snapshots is not None:
            self.metrics.watch_snapshots(self.snapshots)
        self.detector = open_detector(model_path, config.detector)
        self.metrics.set_detector(
            model=self.detector.path.name, runtime=self.detector.runtime, precision=self.detector.precision
        )
        self.batcher = InferenceBatcher(
            self.detector, max_wait_ms=config.batching.max_wait_ms, on_batch=self.metrics.observe_inference
        )
        self.heartbeat = Heartbeat(state_dir)
        objects_cfg = config.storage.objects
        self.retention = RetentionJob(
            self.store,
            self.objects,
            config.storage.retention,
            cameras=list(config.cameras),
            media_dir=getattr(objects_cfg, "root", None),  # the disk watermark is for local storage
        )
        self.metrics.watch_retention(self.retention.totals)
        self.sink = EventSink(
            self.store, self.bus, self.snapshots, observer=self.metrics, journal_dir=state_dir
        )
        # Cluster mode: the live bus is fed from the database (LISTEN/NOTIFY), where the camera actors
        # and the controller store their transitions; this process stores none of its own.
        self.feed = PgFeedListener(self.store, self.bus) if self.cluster is not None else None  # type: ignore[arg-type]
        if self.feed is not None:
            self.metrics.watch_feed(self.feed.stats)
        if self.cluster is None:
            # What a crashed run left: its journal is stored first, then its open events end. (In a
            # cluster the controller does this per camera when it fences a lost actor off.)
            self.sink.replay_journal()
            end_interrupted(self.store, self.heartbeat.last())
        wants_clips = self.cluster is None and any(
            cam.enabled and cam.clips.enabled for cam in config.cameras.values()
        )
        self.clips = ClipRecorder(upload=ClipToSpool(self.uploads)) if wants_clips else None
        if self.clips is not None:
            self.metrics.watch_clips(self.clips)
        tz = ZoneInfo(config.events.timezone)
        lanes = config.traffic_lanes()
        self.traffic_board = TrafficBoard(config.traffic, lanes, tz) if lanes else None
        if self.traffic_board is not None:
            self.traffic_board.watch(self.bus)
            if self.cluster is not None:  # lane states come from the cluster's camera actors
                self.cluster.on_traffic = self.traffic_board.report
        self.publishers: list[MqttPublisher | WebhookSender] = []
        self._publishers_lock = threading.Lock()
        # In a cluster every API replica gets every transition: one of them (the holder of a database
        # lock) publishes, so MQTT messages and webhooks go out once, not once per replica.
        wants_publishers = config.publish.mqtt is not None or bool(config.publish.webhooks)
        self.publish_leader = (
            Leadership(
                self.store, "publishers", on_gain=self._start_publishers, on_loss=self._stop_publishers
            )  # type: ignore[arg-type]
            if self.cluster is not None and wants_publishers
            else None
        )
        if self.cluster is None:
            self._make_publishers()
        self.workers: dict[str, CameraWorker] = {}
        self.errors: dict[str, str] = {}
        for cam_id, cam in config.cameras.items():
            if not cam.enabled or self.cluster is not None:
                continue
            try:
                self.workers[cam_id] = CameraWorker(
                    cam_id,
                    cam,
                    batcher=self.batcher,
                    sink=self.sink,
                    observer=self.metrics,
                    timezone=config.events.timezone,
                    clips=self.clips,
                    traffic=(
                        CameraTraffic(cam_id, cam.traffic, config.traffic.congestion, tz)
                        if cam.traffic is not None and self.traffic_board is not None
                        else None
                    ),
                    on_traffic=self.traffic_board.report if self.traffic_board is not None else None,
                )
            except Exception as exc:  # a broken camera is reported, the others run
                log.error("camera %r cannot start: %s", cam_id, exc)
                self.errors[cam_id] = str(exc)
        self._counters = {cam: _Counters() for cam in self.workers}
        self._stop = threading.Event()
        self.server: uvicorn.Server | None = None
        self._poller = threading.Thread(target=self._poll, name="metrics-poller", daemon=True)
        self.security = open_security(config, self.metrics, self.store)
        # Printed once by the CLI on the first start; never logged, never stored in clear.
        self.first_admin_password = self.security.ensure_admin()
        self.review_feeder = ReviewFeeder(self.bus, self.security.review)
        # Residents' photos: faces by YuNet and the heads of people the detector finds (as in snapshots).
        self.reports = default_desk(
            self.security,
            self.store,
            self.objects,
            uploads=self.uploads,
            redactor=redactor,
            find_people=self._people,
            config=config.reports,
        )
        self._evidence_checked = 0.0
        presign = getattr(config.storage.objects, "presign_expiry", None)
        self.app = create_app(
            self.store,
            self.objects,
            self.bus,
            self.camera_statuses,
            self.metrics,
            heartbeat_s=config.api.sse_heartbeat_s,
            traffic_tz=config.events.timezone,
            security=self.security,
            reports=self.reports,
            traffic_board=self.traffic_board,
            **({"presign_expiry": presign} if presign is not None else {}),
        )

    def start(self) -> Service:
        if self.feed is not None:
            self.feed.start()
            if not self.feed.wait_ready(30.0):
                log.error("live feed: not connected to the event database yet; it keeps trying")
        if self.cluster is not None:
            self.cluster.start()  # joins the Ray cluster; creates the controller if none runs
        self.sink.start()
        self.uploads.start()
        self.retention.start()
        if self.snapshots is not None:
            self.snapshots.start()
        self.review_feeder.start()
        if self.clips is not None:
            self.clips.start()
        if self.traffic_board is not None:
            self.traffic_board.start()
        if self.publish_leader is not None:
            self.publish_leader.start()
        for publisher in self.publishers:
            publisher.start()
        for worker in self.workers.values():
            worker.start()
        self._poller.start()
        log.info("started %d camera(s): %s", len(self.workers), ", ".join(self.workers))
        return self

    def stop(self) -> None:
        """Stop within ``shutdown_timeout_s``: cameras in parallel (their open events end), then the
        event writer and the snapshot writer finish what they hold. What is not stored by then is
        kept on disk (journal, spool) for the next start."""
        started = time.monotonic()
        budget = self.config.shutdown_timeout_s

        def left() -> float:
            return max(0.1, budget - (time.monotonic() - started))

        self._stop.set()
        if self.cluster is not None:
            self.cluster.close()  # the cameras keep running in the cluster
        if self.feed is not None:
            self.feed.close()
        self.retention.close(timeout=left())
        stoppers = [
            threading.Thread(target=w.stop, kwargs={"timeout": budget / 2}, name=f"stop-{c}", daemon=True)
            for c, w in self.workers.items()
        ]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join(left())
        self.batcher.close(timeout=left())
        if self.clips is not None:
            # After the cameras: their last events' clips are cut with what the rings hold.
            self.clips.close(timeout=left())
        stored = self.sink.close(timeout=left())
        if self.snapshots is not None:
            self.snapshots.close(timeout=left())  # encodes what is queued into the spool
        self.uploads.close(timeout=left())  # what S3 does not take now is uploaded at the next start
        if self.publish_leader is not None:
            self.publish_leader.close(timeout=min(5.0, left()))  # closes the publishers if it ran them
        for publisher in self.publishers:
            publisher.close(timeout=min(5.0, left()))
        if self.traffic_board is not None:
            self.traffic_board.stop()
        self.heartbeat.beat()
        self.review_feeder.stop()
        self.bus.close()
        self.security.close()
        self.store.close()
        self.objects.close()
        log.info(
            "stopped in %.1f s%s",
            time.monotonic() - started,
            "" if stored else " (event batches left in the journal for the next start)",
        )

    def _make_publishers(self) -> None:
        config = self.config
        if config.publish.mqtt is not None:
            self.publishers.append(MqttPublisher(config.publish.mqtt, self.bus, self.traffic_board))
        self.publishers += [
            WebhookSender(hook, self.bus, self.traffic_board) for hook in config.publish.webhooks
        ]
        for i, publisher in enumerate(self.publishers):
            name = (
                "mqtt"
                if isinstance(publisher, MqttPublisher)
                else f"webhook{i - (config.publish.mqtt is not None)}"
            )
            self.metrics.watch_publisher(name, publisher.stats)

    def _start_publishers(self) -> None:
        with self._publishers_lock:
            if not self.publishers:
                self._make_publishers()
                for publisher in self.publishers:
                    publisher.start()

    def _stop_publishers(self) -> None:
        with self._publishers_lock:
            publishers, self.publishers = self.publishers, []
        for publisher in publishers:
            publisher.close(timeout=5.0)

    def _people(self, image: np.ndarray) -> np.ndarray:
        """Person boxes (xyxy) in a resident's photo, through the cameras' batcher."""
        dets = self.batcher.submit("reports", image).result(timeout=30)
        names = dets.data.get("class_name")
        if names is None or len(dets) == 0:
            return np.zeros((0, 4), np.float32)
        return dets.xyxy[np.asarray(names) == "person"]

    def camera_statuses(self) -> list[dict[str, Any]]:
        if self.cluster is not None:
            return self._cluster_camera_statuses()
        out = []
        for cam_id, cam in self.config.cameras.items():
            worker = self.workers.get(cam_id)
            if worker is None:
                state = "disabled" if not cam.enabled else "failed"
                out.append(
                    {
                        "id": cam_id,
                        "name": cam.name or cam_id,
                        "state": state,
                        "last_error": self.errors.get(cam_id),
                    }
                )
                continue
            st = worker.status()
            out.append(
                {
                    "id": cam_id,
                    "name": cam.name or cam_id,
                    "state": st.state.value,
                    "last_frame_time": datetime.fromtimestamp(st.last_frame_time, UTC)
                    if st.last_frame_time
                    else None,
                    "source_fps": round(st.source_fps, 2),
                    "analysed_fps": round(st.analysed_fps, 2),
                    "reconnects": st.reconnects,
                    "last_error": st.last_error,
                    "dropped_frames": st.dropped_frames,
                    "width": st.width,
                    "height": st.height,
                }
            )
        return out

    def _cluster_camera_statuses(self) -> list[dict[str, Any]]:
        status = self.cluster.status() if self.cluster is not None else None
        by_id = {c["id"]: c for c in status["cameras"]} if status else {}
        out = []
        for cam_id, cam in self.config.cameras.items():
            entry = by_id.get(cam_id)
            report = entry["report"] if entry else None
            out.append(
                {
                    "id": cam_id,
                    "name": cam.name or cam_id,
                    "state": "disabled" if not cam.enabled else (entry["state"] if entry else "unknown"),
                    "node": entry["node"] if entry else None,
                    "source_fps": report["source_fps"] if report else 0.0,
                    "analysed_fps": report["analysed_fps"] if report else 0.0,
                    "reconnects": report["reconnects"] if report else 0,
                    "dropped_frames": report["dropped"] if report else 0,
                    "last_error": (report or {}).get("last_error") or (entry or {}).get("last_error"),
                }
            )
        return out

    def _poll(self) -> None:
        """Copy each camera's counters into the metrics once a second."""
        while not self._stop.wait(1.0):
            try:
                self._poll_once()
            except Exception:  # one bad reading must not stop the heartbeat and the metrics
                log.exception("metrics poller")

    def _poll_once(self) -> None:
        """One reading of every camera's counters and the writer's state; the heartbeat."""
        metrics = self.metrics
        now = time.monotonic()
        for cam_id, worker in self.workers.items():  # none in cluster mode: see watch_cluster
            st, stats, c = worker.status(), worker.source.stats, self._counters[cam_id]
            c.decoded_rate.sample(now, stats.decoded)
            metrics.set_camera_fps(
                camera=cam_id,
                decoded=c.decoded_rate.rate(),
                analysed=st.analysed_fps,
                source=st.source_fps,
            )
            metrics.frame_decoded(camera=cam_id, n=stats.decoded - c.decoded)
            if st.dropped_frames > c.dropped:
                metrics.frame_dropped(camera=cam_id, reason="queue_full", n=st.dropped_frames - c.dropped)
            for _ in range(st.reconnects - c.reconnects):
                metrics.camera_reconnected(camera=cam_id)
            c.decoded, c.dropped, c.reconnects = stats.decoded, st.dropped_frames, st.reconnects
        metrics.set_queue_depth(queue="inference", n=self.batcher.queue_depth())
        metrics.set_queue_depth(queue="store_backlog", n=self.sink.backlog)
        metrics.set_writer_state(
            journal_bytes=self.sink.journal_bytes, oldest_unwritten_s=self.sink.oldest_unwritten_age()
        )
        self.heartbeat.beat()
        if now - self._evidence_checked > 600:  # evidence of reports closed long enough is let go
            self._evidence_checked = now
            try:
                self.reports.release_evidence()
            except Exception:
                log.exception("releasing report evidence failed; tried again in 10 minutes")

    def serve(self, on_ready: Callable[[str], None] | None = None) -> None:
        """Run the API in this thread until SIGTERM or SIGINT (or :meth:`shutdown`); cameras run
        meanwhile; then stop everything within ``shutdown_timeout_s``. A second signal exits at once."""
        server = self.server = _Server(
            uvicorn.Config(
                self.app,
                host=self.config.api.host,
                port=self.config.api.port,
                log_level="warning",
                lifespan="off",
                # Live SSE streams never end by themselves: give them 2 s, then close them.
                timeout_graceful_shutdown=2,
            )
        )
        restore = self._handle_signals()
        self.start()
        try:
            if on_ready is not None:
                threading.Thread(target=_announce, args=(server, on_ready), daemon=True).start()
            server.run()
        finally:
            self.stop()
            restore()

    def shutdown(self) -> None:
        """Ask a running ``serve()`` to stop (from another thread); it stops the cameras on its way out."""
        if self.server is not None:
            self.server.should_exit = True

    def _handle_signals(self) -> Callable[[], None]:
        """SIGTERM (systemd, Docker, Kubernetes) and SIGINT (Ctrl-C) both stop gracefully; a second
        one exits at once. Only the main thread can take signals: elsewhere (tests) nothing changes."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        received: list[int] = []

        def on_signal(signum: int, _frame: object) -> None:
            received.append(signum)
            name = signal.Signals(signum).name
            if len(received) > 1:
                log.error("%s again: exiting at once, without finishing the stop", name)
                logging.shutdown()
                os._exit(128 + signum)
            log.info(
                "%s: stopping (up to %.0f s; %s again exits at once)",
                name,
                self.config.shutdown_timeout_s,
                name,
            )
            self.shutdown()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore


class _Server(uvicorn.Server):
    """uvicorn's server without its own signal handling: the service's handlers stop everything, in
    order (uvicorn re-raises a captured SIGTERM after serving, which would kill the process before the
    cameras, the writer and the uploads have finished)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def open_security(config: KhuphoConfig, metrics: KhuphoMetrics, store: EventStore) -> Security:
    """Accounts, audit and review tables in the event database (``store``'s), scoped by the configured
    places."""
    severities = {
        (cam_id, rule.name): rule.severity
        for cam_id, cam in config.cameras.items()
        for rule in cam.events.rules
    }
    return Security.open(
        open_security_db(config.storage.database, store),
        ScopeIndex(
            wards=config.wards,
            khu_pho=config.khu_pho,
            camera_khu_pho={cam_id: cam.khu_pho for cam_id, cam in config.cameras.items()},
        ),
        config.auth,
        registry=metrics.registry,
        severity_of=lambda camera, rule, _type: severities.get((camera, rule)),
        merge_gap_s=config.review.merge_gap_s,
    )


def face_redactor(config: KhuphoConfig, beside: Path) -> FaceRedactor | None:
    """YuNet for snapshot redaction: ``privacy.face_model``, else the models folders, else beside the
    detector's model. A missing model stops start-up (``blur_faces: false`` runs without)."""
    if not config.privacy.blur_faces:
        log.warning("privacy.blur_faces is off: snapshots are stored and served with faces visible")
        return None
    from events.redaction import FACE_MODEL, find_face_model

    path = config.privacy.face_model or find_face_model([*model_dirs(), beside])
    if path is None:
        raise ValueError(
            f"privacy.blur_faces: {FACE_MODEL} not found (set KHUPHO_MODELS_DIR or privacy.face_model)"
        )
    try:
        return FaceRedactor(path)
    except (FileNotFoundError, cv2.error) as exc:
        raise ValueError(f"privacy.face_model: cannot load {path.name}: {exc}") from None


def _announce(server: uvicorn.Server, on_ready: Callable[[str], None]) -> None:
    while not server.started:
        if server.should_exit:
            return
        threading.Event().wait(0.05)
    sock = server.servers[0].sockets[0].getsockname() if server.servers else ("?", 0)
    on_ready(f"http://{sock[0]}:{sock[1]}")
