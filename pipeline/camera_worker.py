"""One camera's loop: next frame from its source, the frame step (detector = the shared batcher),
results to the sink. A failure here never touches the other cameras."""

from __future__ import annotations

import functools
import logging
import threading
import time
from concurrent.futures import Future
from typing import Protocol

import numpy as np
import supervision as sv

from events.lanes import CameraTraffic, TrafficReport
from ingest.frame import Frame
from ingest.privacy import PrivacyMask
from ingest.replay import ReplaySource
from ingest.rtsp import RtspSource
from ingest.status import CameraState, CameraStatus
from pipeline.clips import ClipRecorder, make_ring
from pipeline.config import CameraConfig
from pipeline.frame_step import FrameStep, StepResult
from pipeline.observer import PipelineObserver
from pipeline.sink import EventSink

log = logging.getLogger(__name__)


class AnalysedHook(Protocol):
    """Called after each analysed frame with its result (benchmarks, tests)."""

    def __call__(self, *, frame: Frame, result: StepResult) -> None: ...


class DetectorQueue(Protocol):
    """Where a camera's frames go for detection: the batcher shared by the process's cameras, or the
    node's detector actor in cluster mode (``cluster/actors.py``)."""

    def submit(self, source: str, image: np.ndarray) -> Future[sv.Detections]: ...


class CameraWorker:
    """Runs one camera until ``stop()``."""

    def __init__(
        self,
        camera: str,
        config: CameraConfig,
        *,
        batcher: DetectorQueue,
        sink: EventSink,
        observer: PipelineObserver,
        timezone: str,
        clips: ClipRecorder | None = None,
        traffic: CameraTraffic | None = None,
        on_traffic: TrafficReport | None = None,
    ) -> None:
        self.camera = camera
        self.config = config
        self.batcher = batcher
        self.sink = sink
        self.observer = observer
        self.step = FrameStep(
            camera,
            analysis_fps=config.analysis_fps,
            timezone=timezone,
            events=config.events,
            motion=config.motion,
            health=config.health,
            privacy=PrivacyMask(config.privacy_masks),
            traffic=traffic,
            on_traffic=on_traffic,
        )
        self._submit = functools.partial(batcher.submit, camera)
        self.on_analysed: AnalysedHook | None = None
        # The camera's recent compressed video, kept by its source, for event clips.
        self.clips = clips if config.clips.enabled else None
        self.packets = make_ring(camera, config.clips) if self.clips is not None else None
        self.source = self._make_source()
        if self.clips is not None and self.packets is not None:
            self.clips.add_camera(camera, self.packets, config.clips)
        self._stop = threading.Event()
        self._offline = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"camera-{camera}", daemon=True)

    def _make_source(self) -> RtspSource | ReplaySource:
        if self.config.source is not None:
            return RtspSource(
                self.camera, self.config.source, on_status=self._on_status, packets=self.packets
            )
        replay = self.config.replay
        assert replay is not None
        return ReplaySource(
            self.camera,
            replay.path,
            replay.analysis_fps,
            loop=replay.loop,
            speed=replay.speed,
            on_status=self._on_status,
            packets=self.packets,
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
        self._publish(self.step.close())

    def status(self) -> CameraStatus:
        return self.source.status()

    def _on_status(self, *, camera: str, old: CameraState, new: CameraState, error: str | None) -> None:
        # Called in the source's thread: hand over quickly.
        self.observer.set_camera_up(camera=camera, up=new is CameraState.ONLINE)
        if new is CameraState.OFFLINE:
            self._offline.set()
        transitions = self.step.health_events.status_changed(
            old=old, new=new, error=error, pts=self.step.last_pts
        )
        if transitions:
            self.sink.publish(transitions)

    def _run(self) -> None:
        while not self._stop.is_set():
            frame = self.source.get(timeout=0.5)
            if frame is None:
                if self._offline.is_set():
                    # The camera is gone: close what it had open rather than wait for frames that
                    # may never come.
                    self._offline.clear()
                    self._publish(self.step.interrupt())
                continue
            try:
                self._analyse(frame)
            except Exception:
                log.exception("camera %r: analysis of frame %d failed; continuing", self.camera, frame.index)
                self.observer.frame_dropped(camera=self.camera, reason="analysis_error")

    def _analyse(self, frame: Frame) -> None:
        result = self.step.run(frame, submit=self._submit)
        self._publish(result)
        self.observer.frame_analysed(camera=self.camera)
        if result.transitions:
            self.observer.observe_event_latency(seconds=time.time() - frame.wall_time)
        if self.on_analysed is not None:
            self.on_analysed(frame=frame, result=result)

    def _publish(self, result: StepResult) -> None:
        self.sink.publish(result.transitions, result.snapshots, result.traffic_counts)
        if self.clips is not None and result.transitions:
            self.clips.observe(result.transitions)
