"""FrameStep on synthetic frames: gate, reuse, health, timings, outages (real tracker, rules and gate)."""

from __future__ import annotations

from concurrent.futures import Future

import numpy as np
import pytest
import supervision as sv

from events.config import CameraEventsConfig
from events.model import EventType, Phase
from ingest.frame import Frame
from ingest.health import HealthConfig
from ingest.motion import GateDecision, MotionConfig
from pipeline.frame_step import FrameStep

FPS = 5.0
RULES = CameraEventsConfig.model_validate(
    {
        "rules": [
            {
                "name": "yard",
                "type": "zone_intrusion",
                "polygon": [[0, 0], [640, 0], [640, 480], [0, 480]],
                "classes": ["person"],
            }
        ]
    }
)


def _person(x: float = 300.0) -> sv.Detections:
    return sv.Detections(
        xyxy=np.array([[x, 200, x + 40, 300]], np.float32),
        confidence=np.array([0.9], np.float32),
        class_id=np.array([0]),
        data={"class_name": np.array(["person"])},
    )


def _frame(i: int, image: np.ndarray) -> Frame:
    return Frame("cam", i, i / FPS, 1_700_000_000 + i / FPS, image)


def _still() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)


def test_still_frames_skip_the_detector_until_something_is_tracked() -> None:
    step = FrameStep("cam", analysis_fps=FPS, timezone="UTC", events=RULES, motion=MotionConfig())
    image = _still()
    decisions = [step.gate(_frame(i, image)) for i in range(3)]
    # The first frame has no reference: detect; the still ones after it, with nothing tracked, skip.
    assert decisions[0] is GateDecision.DETECT and decisions[1:] == [GateDecision.SKIP, GateDecision.SKIP]
    # A batching driver with a frame of this camera already queued for the detector: never skip.
    assert step.gate(_frame(3, image), queued=1) is GateDecision.DETECT
    # A precomputed motion verdict (benchmark replays) goes through the same rule.
    assert step.gate(_frame(4, image), moved=True) is GateDecision.DETECT
    assert step.seconds.motion > 0


def test_detect_reuse_and_skip_feed_the_tracker_and_rules() -> None:
    step = FrameStep("cam", analysis_fps=FPS, timezone="UTC", events=RULES)
    image = np.zeros((480, 640, 3), np.uint8)
    starts = []
    for i in range(4):
        result = step.finish(_frame(i, image), GateDecision.DETECT, _person(300 + i))
        starts += [t for t in result.transitions if t.phase is Phase.START]
    assert [t.event.type for t in starts] == [EventType.ZONE_INTRUSION]
    tracked_id = result.detections.tracker_id.tolist()
    # A reused frame gets the last detections: the same track goes on.
    reused = step.finish(_frame(4, image), GateDecision.REUSE, None)
    assert reused.detections.tracker_id.tolist() == tracked_id
    # A skipped frame gets nothing (the tracker may still hold the track as lost).
    skipped = step.finish(_frame(5, image), GateDecision.SKIP, None)
    assert len(skipped.detections) == 0
    assert step.seconds.track > 0 and step.seconds.rules > 0 and step.seconds.frames == 6
    with pytest.raises(ValueError, match="gated DETECT has no detections"):
        step.finish(_frame(6, image), GateDecision.DETECT, None)
    # Shutdown ends the open intrusion.
    ends = [t for t in step.close().transitions if t.phase is Phase.END]
    assert [t.event.type for t in ends] == [EventType.ZONE_INTRUSION]


def test_run_submits_only_detect_frames_and_checks_health() -> None:
    step = FrameStep(
        "cam",
        analysis_fps=FPS,
        timezone="UTC",
        events=RULES,
        motion=MotionConfig(),
        health=HealthConfig(blocked_after_s=1.0),
    )
    submitted: list[int] = []

    def submit(image: np.ndarray) -> Future[sv.Detections]:
        submitted.append(image.shape[0])
        future: Future[sv.Detections] = Future()
        future.set_result(_empty())
        return future

    black = np.zeros((480, 640, 3), np.uint8)
    results = [step.run(_frame(i, black), submit=submit) for i in range(20)]
    # One detector call for the first frame, then still frames with nothing tracked are skipped.
    assert len(submitted) == 1
    assert sum(r.decision is GateDecision.DETECT for r in results) == 1
    health = [t for r in results for t in r.transitions if t.event.type is EventType.CAMERA_BLOCKED]
    assert [t.phase for t in health] == [Phase.START]
    # The camera goes away: rules restart, health events stay open until shutdown.
    assert step.interrupt().transitions == []
    closed = step.close().transitions
    assert [(t.event.type, t.phase) for t in closed] == [(EventType.CAMERA_BLOCKED, Phase.END)]


def test_without_events_the_detections_pass_through_untracked() -> None:
    step = FrameStep("cam", analysis_fps=FPS, timezone="UTC", events=None)
    result = step.finish(_frame(0, np.zeros((8, 8, 3), np.uint8)), GateDecision.DETECT, _person())
    assert result.detections.tracker_id is None and len(result.detections) == 1
    assert result.transitions == [] and step.active_tracks == 0


def _empty() -> sv.Detections:
    return sv.Detections(
        xyxy=np.empty((0, 4), np.float32),
        confidence=np.empty(0, np.float32),
        class_id=np.empty(0, int),
        data={"class_name": np.empty(0, object)},
    )
