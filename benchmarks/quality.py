"""Quality of a speed setting: events and line counts against the ungated every-frame reference.

Each clip of the mixed set is decoded once per detector setting at the
analysis rate; the detector runs on every analysed frame and the motion of
every frame is measured on the same pass. The events stage is then replayed
from those results: ungated (every frame's detections: the reference) and
gated (the camera's own FrameStep, fed the stored motion verdicts: the
gate's decision at each frame depends on the tracker's state there, exactly
as in the camera worker). Replaying from stored
detections is exact: the detector's output for a frame does not depend on
which other frames it ran on.

Frames get a fixed wall clock (stream time after a fixed epoch), so event
times and traffic minutes are the same in every replay.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import supervision as sv

from benchmarks.scenes import BenchCamera
from detectors import Detector
from events.config import CameraEventsConfig
from events.model import EventType, Phase
from ingest import Frame, VideoSource
from ingest.motion import GateDecision, MotionConfig, MotionGate
from pipeline.frame_step import FrameStep, StepResult

EPOCH = 1_767_225_600.0  # 2026-01-01 00:00 UTC: a fixed wall clock for replays
MATCH_SLACK_S = 1.0  # an event matches a reference event of the same rule whose span it overlaps +- this
_PICTURE = np.zeros((1, 1, 3), np.uint8)  # rules never read pixels; snapshots are not kept here


@dataclass
class ClipDetections:
    """One clip at one detector setting: every analysed frame's detections and motion verdicts."""

    camera: BenchCamera
    fps: float
    pts: list[float] = field(default_factory=list)
    detections: list[sv.Detections] = field(default_factory=list)
    motion: list[bool] = field(default_factory=list)  # the gate's motion verdict per frame
    inference_seconds: float = 0.0
    motion_seconds: float = 0.0


@dataclass
class Outcome:
    """What the events stage produced on one clip with one setting."""

    frames: int = 0
    inferred: int = 0
    counts: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (line, class, direction)
    events: list[tuple[str, str, float, float]] = field(default_factory=list)  # rule, type, start, end


def detect_clip(
    camera: BenchCamera,
    detector: Detector,
    footage: Path,
    fps: float,
    max_seconds: float,
    motion: MotionConfig,
    batch: int = 4,
) -> ClipDetections:
    """Decode ``camera``'s clip at ``fps`` for at most ``max_seconds``, detect on every frame and
    measure every frame's motion (``motion``'s measuring settings; the skip rule comes later)."""
    out = ClipDetections(camera, fps)
    meter = MotionGate(motion)
    pending: list[np.ndarray] = []

    def flush() -> None:
        t0 = time.perf_counter()
        out.detections.extend(detector.detect(pending))
        out.inference_seconds += time.perf_counter() - t0
        pending.clear()

    # One decoder thread: FFmpeg's default (one per core) would fight inference for the cores.
    source = VideoSource(footage / camera.clip, camera=camera.name, analysis_fps=fps, decode_threads=1)
    for frame in source:
        if frame.pts > max_seconds:
            break
        out.pts.append(frame.pts)
        t0 = time.perf_counter()
        out.motion.append(meter.measure(frame.image, frame.pts).motion)
        out.motion_seconds += time.perf_counter() - t0
        pending.append(frame.image)
        if len(pending) == batch:
            flush()
    if pending:
        flush()
    return out


def replay(clip: ClipDetections, gate: MotionConfig | None, tz: str = "UTC") -> Outcome:
    """The camera's frame step over the stored detections, gated as a live camera is (the motion
    verdicts measured in :func:`detect_clip`, the skip rule of ``gate``)."""
    cam = clip.camera
    step = FrameStep(
        cam.name, analysis_fps=clip.fps, timezone=tz, events=CameraEventsConfig(rules=cam.rules), motion=gate
    )
    out = Outcome()
    for i, (pts, moved, det) in enumerate(zip(clip.pts, clip.motion, clip.detections, strict=True)):
        frame = Frame(cam.name, i, pts, EPOCH + pts, _PICTURE)
        decision = step.gate(frame, moved=moved)
        _collect(step.finish(frame, decision, det), out)
        out.frames += 1
        out.inferred += decision is GateDecision.DETECT
    _collect(step.close(), out)
    return out


def _collect(result: StepResult, out: Outcome) -> None:
    for row in result.traffic_counts:
        out.counts[(row.line, row.class_name, row.direction)] += row.count
    for t in result.transitions:
        ev = t.event
        if t.phase is Phase.END and ev.type is not EventType.LINE_CROSSING:
            out.events.append((ev.rule, ev.type.value, ev.start_pts, ev.end_pts or ev.start_pts))


@dataclass
class Deviation:
    """A setting's outcome against the reference, summed over the clips."""

    frames: int = 0
    inferred: int = 0
    reference_count: int = 0
    count_error: int = 0  # sum over (line, class, direction) of |count - reference|
    events: Counter[str] = field(default_factory=Counter)  # reference events per type
    missed: Counter[str] = field(default_factory=Counter)
    extra: Counter[str] = field(default_factory=Counter)
    per_class: dict[str, tuple[int, int]] = field(default_factory=dict)  # class: (reference, setting)

    @property
    def count_deviation(self) -> float:
        """Relative L1 deviation of the line counts: 0.03 means off by 3 % of all counted crossings."""
        return self.count_error / self.reference_count if self.reference_count else 0.0

    @property
    def inferred_share(self) -> float:
        return self.inferred / self.frames if self.frames else 1.0

    def add(self, reference: Outcome, other: Outcome) -> None:
        self.frames += other.frames
        self.inferred += other.inferred
        keys = set(reference.counts) | set(other.counts)
        self.reference_count += sum(reference.counts.values())
        self.count_error += sum(abs(reference.counts[k] - other.counts[k]) for k in keys)
        for k in keys:
            ref_n, got_n = self.per_class.get(k[1], (0, 0))
            self.per_class[k[1]] = (ref_n + reference.counts[k], got_n + other.counts[k])
        missed, extra = match_events(reference.events, other.events)
        for ev in reference.events:
            self.events[ev[1]] += 1
        for ev in missed:
            self.missed[ev[1]] += 1
        for ev in extra:
            self.extra[ev[1]] += 1


def match_events(
    reference: list[tuple[str, str, float, float]], other: list[tuple[str, str, float, float]]
) -> tuple[list[tuple[str, str, float, float]], list[tuple[str, str, float, float]]]:
    """(reference events with no match, other events with no match).

    Two events match when they come from the same rule and their spans overlap
    (each widened by ``MATCH_SLACK_S``); each event matches at most once,
    earliest start first.
    """
    free = sorted(other, key=lambda e: e[2])
    missed = []
    for ev in sorted(reference, key=lambda e: e[2]):
        hit = next(
            (
                i
                for i, o in enumerate(free)
                if o[0] == ev[0]
                and o[2] - MATCH_SLACK_S <= ev[3] + MATCH_SLACK_S
                and ev[2] - MATCH_SLACK_S <= o[3] + MATCH_SLACK_S
            ),
            None,
        )
        if hit is None:
            missed.append(ev)
        else:
            free.pop(hit)
    return missed, free
