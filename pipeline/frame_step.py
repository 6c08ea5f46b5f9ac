"""The per-frame step of one camera: motion gate → detector → health → tracker → rules.

This is the only place where a frame goes through the stages. Three drivers
call it: the live camera worker (``pipeline/camera_worker.py``, detector =
the batcher shared by all cameras), ``khupho analyze`` (``pipeline/analyze.py``,
batches of one video's frames) and the benchmarks (``benchmarks/quality.py``,
stored detections replayed under other gate settings).

A step is split in two so a driver can batch frames between the halves:
:meth:`FrameStep.gate` decides what the detector does with a frame (run,
skip, or reuse the last detections), the driver runs the detector on the
frames that need it, and :meth:`FrameStep.finish` tracks, runs the rules and
turns health changes into events. :meth:`FrameStep.run` is both halves for
one frame, with the health check overlapping inference.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np
import supervision as sv

from events.camera_events import CameraEventProcessor
from events.camera_health import CameraHealthEvents
from events.config import CameraEventsConfig
from events.lanes import CameraTraffic, TrafficReport
from events.model import EventTransition, TrafficCount
from events.rules.base import SnapshotCandidate
from events.tracking import empty_tracked
from ingest.frame import Frame
from ingest.health import CameraHealthMonitor, HealthChange, HealthConfig
from ingest.motion import GateDecision, MotionConfig, MotionGate
from ingest.privacy import PrivacyMask

Submit = Callable[[np.ndarray], "Future[sv.Detections]"]
"""Hands one picture to a detector and returns the future of its detections (the batcher's ``submit``)."""


@dataclass(frozen=True, slots=True, eq=False)
class StepResult:
    """What one frame produced, in emission order.

    ``decision`` is what the gate decided for the frame (None for a close).
    ``detections`` are the frame's confirmed tracks (the raw detections when the step
    does not track). ``snapshots`` hold the frame's image by reference: the frame must not
    be written to afterwards. ``traffic_counts`` are increments for storage to add up.
    """

    decision: GateDecision | None
    detections: sv.Detections
    transitions: list[EventTransition]
    snapshots: list[SnapshotCandidate]
    traffic_counts: list[TrafficCount]


@dataclass(slots=True)
class StageSeconds:
    """Wall time spent in each stage of the step, summed over frames (``khupho analyze`` reports it)."""

    motion: float = 0.0
    health: float = 0.0
    track: float = 0.0
    rules: float = 0.0
    frames: int = field(default=0)


class FrameStep:
    """One camera's frames through gate, health, tracker and rules; the detector is the driver's.

    ``events`` None runs no tracker and no rules (``khupho analyze --no-track``): the
    detections come out as found. ``motion`` None sends every frame to the detector;
    ``health`` None checks no picture health; ``privacy`` blacks out the camera's masks
    before anything else. Frames must come in stream order. Not
    thread-safe: one step per camera, used by one loop (``health_events`` alone is also
    called from the camera's reader thread, and locks).
    """

    def __init__(
        self,
        camera: str,
        *,
        analysis_fps: float,
        timezone: str,
        events: CameraEventsConfig | None,
        motion: MotionConfig | None = None,
        health: HealthConfig | None = None,
        privacy: PrivacyMask | None = None,
        traffic: CameraTraffic | None = None,
        on_traffic: TrafficReport | None = None,
    ) -> None:
        self.camera = camera
        self.privacy = privacy
        # Speeds, lane statistics and their events after the rules (needs the tracker); each frame's
        # lane states go to on_traffic (the traffic board).
        self.traffic = traffic if events is not None else None
        self.on_traffic = on_traffic
        self.processor = (
            CameraEventProcessor(camera, events, analysis_fps, timezone) if events is not None else None
        )
        self.health_events = CameraHealthEvents(camera, timezone)
        self.health = (
            CameraHealthMonitor(camera, health, fps_hint=analysis_fps) if health is not None else None
        )
        self.motion_gate = MotionGate(motion) if motion is not None else None
        self.seconds = StageSeconds()
        self._last_detections = empty_tracked()  # what the detector last found, for reused frames
        self._last_pts = 0.0

    @property
    def active_tracks(self) -> int:
        return self.processor.tracker.active_tracks if self.processor is not None else 0

    @property
    def last_pts(self) -> float:
        """Stream time of the last finished frame (0 before the first)."""
        return self._last_pts

    # -- the two halves --------------------------------------------------------------------------------

    def gate(self, frame: Frame, *, queued: int = 0, moved: bool | None = None) -> GateDecision:
        """What the detector does with ``frame``.

        ``queued``: frames of this camera already sent to the detector and not yet finished
        (a batching driver); they may start tracks, so they count as held tracks and a batch
        never skips a frame that frame-by-frame gating would have sent. ``moved``: the
        frame's motion verdict when already measured (benchmark replays); otherwise the gate
        measures it on ``frame.image``.

        The camera's privacy masks are blacked out here, in place, before anything (gate,
        detector, health, rules, snapshots) reads the picture: every driver calls this first.
        """
        if self.privacy:
            self.privacy.apply(frame.image)
        gate = self.motion_gate
        if gate is None:
            return GateDecision.DETECT
        t0 = time.perf_counter()
        held = self.active_tracks + queued
        if moved is None:
            decision = gate.decide(frame.image, frame.pts, held)
        else:
            decision = gate.choose(moved, frame.pts, held)
        self.seconds.motion += time.perf_counter() - t0
        return decision

    def check_health(self, frame: Frame) -> list[HealthChange]:
        """The picture-health conditions that started or cleared with this frame."""
        if self.health is None:
            return []
        t0 = time.perf_counter()
        changes = self.health.update(frame.image, frame.pts)
        self.seconds.health += time.perf_counter() - t0
        return changes

    def finish(
        self,
        frame: Frame,
        decision: GateDecision,
        detections: sv.Detections | None,
        *,
        health: Sequence[HealthChange] | None = None,
    ) -> StepResult:
        """Track and run the rules on ``frame``.

        ``detections`` are the detector's result for a frame gated ``DETECT`` (and ignored
        otherwise: a skipped frame gets an empty set, a reused one the last result).
        ``health``: the frame's health changes if the driver already checked them (to overlap
        inference); None checks them here.
        """
        if decision is GateDecision.DETECT:
            if detections is None:
                raise ValueError(
                    f"camera {self.camera!r}: frame {frame.index} gated DETECT has no detections"
                )
            found = self._last_detections = detections
        elif decision is GateDecision.REUSE:
            found = self._last_detections
        else:
            found = empty_tracked()
        changes = self.check_health(frame) if health is None else list(health)
        transitions: list[EventTransition] = []
        snapshots: list[SnapshotCandidate] = []
        counts: list[TrafficCount] = []
        tracked = found
        if self.processor is not None:
            t0 = time.perf_counter()
            tracked = self.processor.track(frame, found)
            t1 = time.perf_counter()
            result = self.processor.apply_rules(frame, tracked)
            t2 = time.perf_counter()
            transitions, snapshots, counts = result.transitions, result.snapshots, result.traffic_counts
            if self.traffic is not None:
                lanes = self.traffic.process(frame, tracked)
                transitions, counts = transitions + lanes.transitions, counts + lanes.counts
                if self.on_traffic is not None:
                    self.on_traffic(camera=self.camera, output=lanes)
                t2 = time.perf_counter()
            self.seconds.track += t1 - t0
            self.seconds.rules += t2 - t1
        if changes:
            transitions = transitions + self.health_events.health_changed(changes, frame.wall_time)
        self._last_pts = frame.pts
        self.seconds.frames += 1
        return StepResult(decision, tracked, transitions, snapshots, counts)

    def run(self, frame: Frame, *, submit: Submit) -> StepResult:
        """Both halves for one frame: the health check runs while the detector works on it."""
        decision = self.gate(frame)
        future = submit(frame.image) if decision is GateDecision.DETECT else None
        changes = self.check_health(frame)
        detections = future.result() if future is not None else None
        return self.finish(frame, decision, detections, health=changes)

    # -- outages and shutdown --------------------------------------------------------------------------

    def interrupt(self) -> StepResult:
        """The camera went away: end what its rules had open and start afresh when frames return
        (its tracks would not survive the gap anyway). Health events stay open."""
        if self.motion_gate is not None:
            self.motion_gate.reset()
        return self._closed(close_health=False)

    def close(self) -> StepResult:
        """End every open event, the health ones included (shutdown)."""
        return self._closed(close_health=True)

    def _closed(self, *, close_health: bool) -> StepResult:
        transitions: list[EventTransition] = []
        snapshots: list[SnapshotCandidate] = []
        counts: list[TrafficCount] = []
        if self.processor is not None:
            result = self.processor.close()
            transitions, snapshots, counts = result.transitions, result.snapshots, result.traffic_counts
        if self.traffic is not None:
            lanes = self.traffic.close(time.time())
            transitions, counts = transitions + lanes.transitions, counts + lanes.counts
            if self.on_traffic is not None:  # the minutes it had open; no lane states: not a frame
                self.on_traffic(camera=self.camera, output=lanes)
        if close_health:
            transitions = transitions + self.health_events.close(self._last_pts)
        return StepResult(None, empty_tracked(), transitions, snapshots, counts)
