"""What one camera writes per hour, measured on the real footage: the city simulation's source rates.

``python -m benchmarks.city_rates [--fps 5] [--out benchmarks/city_rates.json]`` runs each demo
camera's clip (``api.demo.DEMO_CAMERAS``: the clips that have example rules) once through the same
:class:`pipeline.frame_step.FrameStep` a live camera uses (the default detector and runtime, the
motion gate as ``khupho run`` has it, the demo's rules, ``--fps`` analysed frames per second: the
live-capacity setting of ``khupho bench``) and counts, per clip: event starts, transitions (start,
update, end), traffic-count increments and writer batches (frames that handed the sink anything:
one ``apply_batch`` each). Rates are per camera-hour of stream time; the mix is the mean over the
clips (one camera of each kind). The clips are short (14-80 s), so a clip's hourly rate is an
extrapolation of its busiest or quietest half-minute, not a day's average.

The result is committed as ``benchmarks/city_rates.json`` (with the command and the date) and read
by ``benchmarks/city.py``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from api.demo import DEMO_CAMERAS, shared_dir
from detectors import DetectorConfig, open_detector
from events.config import DEFAULT_TIMEZONE, CameraEventsConfig
from events.model import Phase
from ingest import VideoSource
from ingest.motion import GateDecision, MotionConfig
from models import resolve_model
from pipeline.frame_step import FrameStep, StepResult

RATES_FILE = Path(__file__).with_name("city_rates.json")


def measure_clip(
    camera: str, clip: Path, rules: list[dict[str, Any]], detector: Any, fps: float
) -> dict[str, Any]:
    source = VideoSource(clip, camera=camera, analysis_fps=fps, decode_threads=1)
    step = FrameStep(
        camera,
        analysis_fps=fps,
        timezone=DEFAULT_TIMEZONE,
        events=CameraEventsConfig.model_validate({"rules": rules}),
        motion=MotionConfig(),
    )
    phases: Counter[str] = Counter()
    traffic = batches = frames = 0
    first_pts = last_pts = None

    def count(result: StepResult) -> None:
        nonlocal traffic, batches
        for t in result.transitions:
            phases[t.phase.value] += 1
        traffic += len(result.traffic_counts)
        batches += bool(result.transitions or result.traffic_counts)

    for frame in source:
        frames += 1
        first_pts = frame.pts if first_pts is None else first_pts
        last_pts = frame.pts
        decision = step.gate(frame)
        found = detector.detect([frame.image])[0] if decision is GateDecision.DETECT else None
        count(step.finish(frame, decision, found))
    # Events still open at the clip's end: ended as a stopping camera would (a live camera keeps
    # them open; ending them counts one more transition each, an upper bound).
    count(step.close())
    seconds = max(1e-6, (last_pts or 0.0) - (first_pts or 0.0) + 1.0 / fps)
    per_hour = 3600.0 / seconds
    transitions = sum(phases.values())
    return {
        "camera": camera,
        "clip": clip.name,
        "stream_seconds": round(seconds, 2),
        "frames_analysed": frames,
        "events": phases[Phase.START.value],
        "transitions": transitions,
        "traffic_counts": traffic,
        "batches": batches,
        "events_per_hour": round(phases[Phase.START.value] * per_hour, 1),
        "transitions_per_hour": round(transitions * per_hour, 1),
        "traffic_counts_per_hour": round(traffic * per_hour, 1),
        "batches_per_hour": round(batches * per_hour, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fps", type=float, default=5.0, help="analysed frames per second")
    parser.add_argument("--out", type=Path, default=RATES_FILE)
    args = parser.parse_args(argv)
    footage = shared_dir() / "footage"
    detector = open_detector(resolve_model(None), DetectorConfig())
    clips = []
    t0 = time.perf_counter()
    for camera, spec in DEMO_CAMERAS.items():
        clips.append(measure_clip(camera, footage / spec["clip"], spec["rules"], detector, args.fps))
        print(json.dumps(clips[-1]))
    keys = ("events_per_hour", "transitions_per_hour", "traffic_counts_per_hour", "batches_per_hour")
    mix = {k: round(sum(c[k] for c in clips) / len(clips), 1) for k in keys}
    result = {
        "command": f"python -m benchmarks.city_rates --fps {args.fps:g}",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "detector": f"{detector.runtime} {detector.precision}",
        "analysis_fps": args.fps,
        "seconds": round(time.perf_counter() - t0, 1),
        "clips": clips,
        "mix_per_camera_hour": mix,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(mix))


if __name__ == "__main__":
    main()
