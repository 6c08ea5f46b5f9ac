"""One camera's loop: next frame, motion gate, detection (batched with other cameras), health,
tracking and rules.

The loop stays short; each stage is a call that can be tested on its own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from api.config import CameraConfig
from api.metrics import KhuphoMetrics
from api.sink import EventSink
from detectors.batcher import InferenceBatcher
from events.camera_events import CameraEventProcessor
from events.camera_health import CameraHealthEvents
from events.tracking import empty_tracked
from ingest.frame import Frame
from ingest.health import CameraHealthMonitor
from ingest.motion import GateDecision, MotionGate
from ingest.replay import ReplaySource
from ingest.rtsp import RtspSource
from ingest.status import CameraState, CameraStatus

log = logging.getLogger(__name__)


class CameraWorker:
    """Runs one camera until ``stop()``; a failure here never touches the other cameras."""

    def __init__(
        self,
        camera: str,
        config: CameraConfig,
        batcher: InferenceBatcher,
        sink: EventSink,
        metrics: KhuphoMetrics,
        timezone: str,
    ) -> None:
        self.camera = camera
        self.config = config
        self.batcher = batcher
        self.sink = sink
        self.metrics = metrics
        self.processor = CameraEventProcessor(camera, config.events, config.analysis_fps, timezone)
        self.health_events = CameraHealthEvents(camera, timezone)
        self.health = (
            CameraHealthMonitor(camera, config.health, fps_hint=None) if config.health is not None else None
        )
        self.gate = MotionGate(config.motion) if config.motion is not None else None
        self._last_detections = empty_tracked()  # what the detector last found, for reused frames
        # Called after each analysed frame with whether the detector ran on it (benchmarks, tests).
        self.on_analysed: Callable[[Frame, bool], None] | None = None
        self.source = self._make_source()
        self._stop = threading.Event()
        self._offline = threading.Event()
        self._last_pts = 0.0
        self._thread = threading.Thread(target=self._run, name=f"camera-{camera}", daemon=True)

    def _make_source(self) -> RtspSource | ReplaySource:
        if self.config.source is not None:
            return RtspSource(self.camera, self.config.source, on_status=self._on_status)
        replay = self.config.replay
        assert replay is not None
        return ReplaySource(
            self.camera,
            replay.path,
            replay.analysis_fps,
            loop=replay.loop,
            speed=replay.speed,
            on_status=self._on_status,
        )

    def start(self) -> CameraWorker:
        self.source.start()
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.source.stop()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("camera %r: worker still running after %.0f s", self.camera, timeout)
            return
        result = self.processor.close()
        self.sink.publish(
            result.transitions + self.health_events.close(self._last_pts),
            result.snapshots,
            result.traffic_counts,
        )

    def status(self) -> CameraStatus:
        return self.source.status()

    def _on_status(self, camera: str, old: CameraState, new: CameraState, error: str | None) -> None:
        # Called in the source's thread: hand over quickly.
        self.metrics.set_camera_up(camera, new is CameraState.ONLINE)
        if new is CameraState.OFFLINE:
            self._offline.set()
        transitions = self.health_events.status_changed(old, new, error, pts=self._last_pts)
        if transitions:
            self.sink.publish(transitions)

    def _run(self) -> None:
        while not self._stop.is_set():
            frame = self.source.get(timeout=0.5)
            if frame is None:
                if self._offline.is_set():
                    # The camera is gone: close what it had open, rather than wait for frames that
                    # may never come. Its tracks would not survive the gap anyway.
                    self._offline.clear()
                    if self.gate is not None:
                        self.gate.reset()
                    result = self.processor.close()
                    self.sink.publish(result.transitions, result.snapshots, result.traffic_counts)
                continue
            try:
                self._analyse(frame)
            except Exception:
                log.exception("camera %r: analysis of frame %d failed; continuing", self.camera, frame.index)
                self.metrics.frame_dropped(self.camera, "analysis_error")

    def _analyse(self, frame: Frame) -> None:
        # A still frame with nothing tracked skips the detector (the tracker gets an empty set);
        # with still_tracks: reuse, a still frame with tracks gets the last detections again.
        decision = (
            GateDecision.DETECT
            if self.gate is None
            else self.gate.decide(frame.image, frame.pts, self.processor.tracker.active_tracks)
        )
        run = decision is GateDecision.DETECT
        future = self.batcher.submit(self.camera, frame.image) if run else None
        # Health is measured while the batch is on the detector.
        changes = self.health.update(frame.image, frame.pts) if self.health is not None else []
        if future is not None:
            detections = self._last_detections = future.result()
        else:
            detections = self._last_detections if decision is GateDecision.REUSE else empty_tracked()
        result = self.processor.process(frame, detections)
        transitions = result.transitions
        if changes:
            transitions = transitions + self.health_events.health_changed(changes, frame.wall_time)
        self.sink.publish(transitions, result.snapshots, result.traffic_counts)
        self._last_pts = frame.pts
        self.metrics.frame_analysed(self.camera)
        if transitions:
            self.metrics.observe_event_latency(time.time() - frame.wall_time)
        if self.on_analysed is not None:
            self.on_analysed(frame, run)
