"""Line counting: khupho's line_crossing rule against Ultralytics' ``ObjectCounter`` on the same frames.

    python -m benchmarks.counting --video ../shared/footage/traffic_intersection_cctv_640x480_h264.mp4 \
        --model ../shared/models/yolov8n-coco.onnx [--fps F] [--frames N] [--imgsz 640] [--out counts.json]

One decode pass (``ingest.VideoSource``) feeds every analysed frame to both sides:

- khupho: ``open_detector`` (``--runtime``, ``--precision``) -> ``FrameStep`` (tracker and
  rules) with one line rule per anchor (``--anchors``, by default bottom_center and center, so one run shows
  the anchor's effect on the same tracks); counts are summed from the traffic
  count rows and checked against the rule's ``line_crossing`` events;
- Ultralytics: one ``ObjectCounter`` per tracker config (``--ultralytics-tracker``,
  by default the counter's own default) on the same model file, classes and
  image size, each with its own ``model.track`` (so its own tracker).

The default line lies along the north-east crosswalk of the intersection clip,
across both lanes of that arm: vehicles coming down from the north-east road
into the intersection cross it ``in``, vehicles leaving up that road cross it
``out``. Prints one markdown table (per class and total, each khupho anchor a
row set) and writes everything, with each side's per-crossing log, to ``--out``.

Directions: khupho's ``in`` is a crossing from the right-hand side of
start->end to its left. Ultralytics ignores the line's orientation: for a line
that is more vertical than horizontal its ``IN`` is moving right (centroid x
grows), otherwise moving down (centroid y grows). ``ultralytics_in_direction``
says which khupho direction that is for the chosen line, and the table reports
Ultralytics' counts under khupho's direction names.

``--frames N`` keeps the first N frames of the source (before ``--fps`` picks
among them). Needs the ``ultralytics`` extra (with ``shapely`` and ``lap``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detectors import DetectorConfig, YoloDetector, open_detector
from events.config import DEFAULT_TIMEZONE, CameraEventsConfig, LineCrossingConfig, TrackerConfig
from events.geometry import Anchor
from events.model import EventType, Phase
from ingest import Frame, VideoSource
from ingest.motion import GateDecision
from pipeline.frame_step import FrameStep

Point = tuple[float, float]

# Along the north-east crosswalk of traffic_intersection_cctv_640x480_h264.mp4, drawn
# right to left so that "in" (right-hand side to left-hand side) is moving down the
# picture, into the intersection; it spans both lanes of that arm.
DEFAULT_LINE: tuple[Point, Point] = ((630.0, 170.0), (380.0, 110.0))
DEFAULT_CLASSES = ("bicycle", "car", "motorcycle", "bus", "truck")
DEFAULT_ANCHORS = (Anchor.BOTTOM_CENTER, Anchor.CENTER)
IN, OUT = "in", "out"
CAMERA = "counting"


def ultralytics_in_direction(start: Point, end: Point) -> str:
    """khupho's name (``in``/``out``) for what Ultralytics' ``ObjectCounter`` counts as ``IN`` on this line.

    Ultralytics (``solutions/object_counter.py``) calls a line vertical when
    ``|dx| < |dy|`` and counts ``IN`` for a centroid moving right on a vertical
    line, moving down on any other; khupho's ``in`` is a crossing from the
    right-hand side of start->end (positive signed distance, see
    ``events.geometry.line_coordinates``) to the left-hand side.
    """
    dx, dy = end[0] - start[0], end[1] - start[1]
    mx, my = (1.0, 0.0) if abs(dx) < abs(dy) else (0.0, 1.0)
    # Change of khupho's signed distance for that motion: negative means right side -> left side.
    ds = dx * my - dy * mx
    return IN if ds < 0 else OUT


def flip(direction: str) -> str:
    return OUT if direction == IN else IN


@dataclass
class SideCounts:
    """One counter's result: per class and direction (khupho's names), with a log of crossings."""

    label: str
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    crossings: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, class_name: str, direction: str, n: int = 1) -> None:
        self.counts.setdefault(class_name, Counter())[direction] += n

    def total(self, direction: str) -> int:
        return sum(c[direction] for c in self.counts.values())

    def get(self, class_name: str, direction: str) -> int:
        return self.counts.get(class_name, Counter())[direction]

    def as_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "counts": {k: {IN: v[IN], OUT: v[OUT]} for k, v in sorted(self.counts.items())},
            "total": {IN: self.total(IN), OUT: self.total(OUT)},
            "crossings": self.crossings,
            "seconds": round(self.seconds, 2),
        }


def line_rules(
    start: Point, end: Point, classes: Sequence[str], anchors: Sequence[Anchor], hysteresis_px: float
) -> list[LineCrossingConfig]:
    """One rule per anchor on the same line, named ``line_<anchor>``."""
    return [
        LineCrossingConfig(
            name=f"line_{anchor.value}",
            start=start,
            end=end,
            classes=list(classes),
            anchor=anchor,
            hysteresis_px=hysteresis_px,
        )
        for anchor in anchors
    ]


class KhuphoCounter:
    """Detector and events stage of one camera; counts per rule from its traffic counts."""

    def __init__(
        self,
        detector: YoloDetector,
        rules: Sequence[LineCrossingConfig],
        analysis_fps: float,
        tracker: TrackerConfig | None = None,
    ) -> None:
        self.detector = detector
        # Every frame detected (no motion gate), as Ultralytics' counter does.
        self.step = FrameStep(
            CAMERA,
            analysis_fps=analysis_fps,
            timezone=DEFAULT_TIMEZONE,
            events=CameraEventsConfig(rules=list(rules), tracker=tracker or TrackerConfig()),
        )
        self.sides = {r.name: SideCounts(f"khupho {r.anchor.value}") for r in rules}
        # Counted independently of the traffic rows, so the two can be checked against each other.
        self.events: Counter[str] = Counter()
        self.seconds = 0.0

    def process(self, frame: Frame) -> None:
        t0 = time.perf_counter()
        detections = self.detector.detect([frame.image])[0]
        result = self.step.finish(frame, GateDecision.DETECT, detections)
        self.seconds += time.perf_counter() - t0
        self._take(result.traffic_counts)
        for transition in result.transitions:
            ev = transition.event
            if transition.phase is Phase.START and ev.type is EventType.LINE_CROSSING:
                self.events[ev.rule] += 1
                self.sides[ev.rule].crossings.append(
                    {
                        "frame": frame.index,
                        "pts": round(frame.pts, 3),
                        "track_id": ev.track_ids[0],
                        "class": ev.classes[0],
                        "direction": ev.data["direction"],
                    }
                )

    def close(self) -> dict[str, SideCounts]:
        """Flush the last traffic minute; the counts per rule name."""
        self._take(self.step.close().traffic_counts)
        for side in self.sides.values():
            side.seconds = self.seconds
        return self.sides

    def _take(self, rows: Iterable[Any]) -> None:
        # Traffic rows are per-minute increments: summing them gives the totals.
        for row in rows:
            self.sides[row.line].add(row.class_name, row.direction, row.count)


def run_khupho(
    frames: Iterable[Frame],
    model: Path,
    imgsz: int,
    analysis_fps: float,
    rules: Sequence[LineCrossingConfig],
    classes: Sequence[str],
    *,
    runtime: str = "auto",
    precision: str = "auto",
    tracker: TrackerConfig | None = None,
) -> tuple[dict[str, SideCounts], Counter[str]]:
    """khupho's side alone (for tests): counts per rule name and the number of line_crossing events."""
    detector = make_detector(model, imgsz, classes, runtime=runtime, precision=precision)
    counter = KhuphoCounter(detector, rules, analysis_fps, tracker)
    for frame in frames:
        counter.process(frame)
    return counter.close(), counter.events


def make_detector(
    model: Path, imgsz: int, classes: Sequence[str], *, runtime: str = "auto", precision: str = "auto"
) -> YoloDetector:
    # The class filter sits in the detector, as Ultralytics' `classes=` filters
    # predictions before its tracker: both trackers see the same kinds of objects.
    config = DetectorConfig(
        imgsz=imgsz, conf=0.25, iou=0.7, classes=list(classes), runtime=runtime, precision=precision
    )
    return open_detector(model, config)


class UltralyticsCounter:
    """One ``ObjectCounter``, its counts renamed to khupho's directions, with a per-frame crossing log."""

    def __init__(
        self,
        model: Path,
        line: tuple[Point, Point],
        class_ids: list[int],
        imgsz: int,
        tracker: str | None,
    ) -> None:
        from ultralytics.solutions import ObjectCounter
        from ultralytics.utils import LOGGER

        # Its per-frame "No tracks found" warnings and settings dump would bury the table.
        LOGGER.setLevel(logging.ERROR)
        extra = {} if tracker is None else {"tracker": tracker}
        self.counter = ObjectCounter(
            model=str(model),
            region=[tuple(map(int, line[0])), tuple(map(int, line[1]))],
            classes=class_ids,
            imgsz=imgsz,
            conf=0.25,
            iou=0.7,
            show=False,
            verbose=False,
            **extra,
        )
        self.tracker = str(self.counter.CFG["tracker"])
        self.in_is = ultralytics_in_direction(*line)
        self.side = SideCounts(f"ultralytics {self.tracker}")

    def process(self, frame: Frame) -> None:
        c = self.counter
        before_ids = set(c.counted_ids)
        before = {k: dict(v) for k, v in c.classwise_count.items()}
        t0 = time.perf_counter()
        # The counter draws on the picture it is given: hand it a copy.
        c.process(frame.image.copy())
        self.side.seconds += time.perf_counter() - t0
        new_ids = sorted(set(c.counted_ids) - before_ids)
        if not new_ids:
            return
        for name, now in c.classwise_count.items():
            was = before.get(name, {"IN": 0, "OUT": 0})
            for key, direction in (("IN", self.in_is), ("OUT", flip(self.in_is))):
                n = now[key] - was[key]
                if n:
                    self.side.add(name, direction, n)
                    # The counter does not say which new id went which way when several count at once.
                    self.side.crossings.append(
                        {
                            "frame": frame.index,
                            "pts": round(frame.pts, 3),
                            "class": name,
                            "direction": direction,
                            "n": n,
                            "track_ids": new_ids,
                        }
                    )


def limited(frames: Iterable[Frame], max_frames: int | None) -> Iterator[Frame]:
    """Frames whose source index is below ``max_frames`` (all when None)."""
    for frame in frames:
        if max_frames is not None and frame.index >= max_frames:
            return
        yield frame


@dataclass
class Result:
    khupho: dict[str, SideCounts]
    khupho_events: Counter[str]
    ultralytics: list[SideCounts]
    frames: int
    analysis_fps: float


def run(
    video: Path,
    model: Path,
    *,
    ultralytics_model: Path | None = None,
    line: tuple[Point, Point] = DEFAULT_LINE,
    classes: Sequence[str] = DEFAULT_CLASSES,
    anchors: Sequence[Anchor] = DEFAULT_ANCHORS,
    hysteresis_px: float = 10.0,
    imgsz: int = 640,
    fps: float | None = None,
    max_frames: int | None = None,
    trackers: Sequence[str | None] = (None,),
    runtime: str = "onnxruntime",
    precision: str = "fp32",
) -> Result:
    source = VideoSource(video, camera=CAMERA, analysis_fps=fps)
    analysis_fps = fps or source.info.fps
    if not analysis_fps:
        raise SystemExit(f"{video}: no frame rate in the file, give --fps")
    detector = make_detector(model, imgsz, classes, runtime=runtime, precision=precision)
    names_to_id = {v: k for k, v in detector.names.items()}
    unknown = [c for c in classes if c not in names_to_id]
    if unknown:
        raise SystemExit(f"classes not in the model: {unknown}")
    khupho = KhuphoCounter(detector, line_rules(*line, classes, anchors, hysteresis_px), analysis_fps)
    peers = [
        UltralyticsCounter(ultralytics_model or model, line, [names_to_id[c] for c in classes], imgsz, t)
        for t in trackers
    ]
    n = 0
    for frame in limited(source, max_frames):
        khupho.process(frame)
        for peer in peers:
            peer.process(frame)
        n += 1
    return Result(khupho.close(), khupho.events, [p.side for p in peers], n, analysis_fps)


def _pair(side: SideCounts, cls: str | None) -> tuple[int, int]:
    if cls is None:
        return side.total(IN), side.total(OUT)
    return side.get(cls, IN), side.get(cls, OUT)


def markdown_table(result: Result) -> str:
    """Rows: each khupho rule (anchor) x (each class seen, then the total); one column pair per peer."""
    sides = [*result.khupho.values(), *result.ultralytics]
    classes = sorted({c for s in sides for c in s.counts})
    head = ["khupho anchor", "class", "khupho in / out"]
    for peer in result.ultralytics:
        head += [f"{peer.label} in / out", "difference in / out"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rule in result.khupho.values():
        anchor = rule.label.removeprefix("khupho ")
        for cls in [*classes, None]:
            ki, ko = _pair(rule, cls)
            row = [anchor, cls or "**total**", f"{ki} / {ko}"]
            for peer in result.ultralytics:
                ui, uo = _pair(peer, cls)
                row += [f"{ui} / {uo}", f"{ki - ui:+d} / {ko - uo:+d}"]
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", type=Path, required=True)
    ap.add_argument("--model", type=Path, required=True, help="ONNX model for khupho (and Ultralytics)")
    ap.add_argument(
        "--ultralytics-model", type=Path, help="another model file for Ultralytics (e.g. the .pt)"
    )
    ap.add_argument("--frames", type=int, help="only the first N frames of the source")
    ap.add_argument("--fps", type=float, help="analysis rate for both sides (default: every frame)")
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument(
        "--line",
        type=float,
        nargs=4,
        metavar=("X1", "Y1", "X2", "Y2"),
        default=[*DEFAULT_LINE[0], *DEFAULT_LINE[1]],
        help="counting line start and end (px)",
    )
    ap.add_argument("--classes", nargs="+", default=list(DEFAULT_CLASSES))
    ap.add_argument(
        "--anchors",
        nargs="+",
        type=Anchor,
        default=list(DEFAULT_ANCHORS),
        help="one khupho rule per anchor (the first is the production default)",
    )
    ap.add_argument("--hysteresis-px", type=float, default=10.0)
    ap.add_argument(
        "--ultralytics-tracker",
        nargs="+",
        default=[None],
        help="tracker configs, one ObjectCounter each (default: the counter's own default)",
    )
    ap.add_argument("--no-ultralytics", action="store_true", help="khupho's side only")
    ap.add_argument("--runtime", choices=["auto", "onnxruntime", "openvino"], default="onnxruntime")
    ap.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="fp32")
    ap.add_argument("--out", type=Path, help="write counts and crossing logs as JSON")
    args = ap.parse_args(argv)
    line = ((args.line[0], args.line[1]), (args.line[2], args.line[3]))

    t0 = time.perf_counter()
    result = run(
        args.video,
        args.model,
        ultralytics_model=args.ultralytics_model,
        line=line,
        classes=args.classes,
        anchors=args.anchors,
        hysteresis_px=args.hysteresis_px,
        imgsz=args.imgsz,
        fps=args.fps,
        max_frames=args.frames,
        trackers=() if args.no_ultralytics else args.ultralytics_tracker,
        runtime=args.runtime,
        precision=args.precision,
    )
    elapsed = time.perf_counter() - t0
    in_is = ultralytics_in_direction(*line)
    print(
        f"{result.frames} frames at {result.analysis_fps:g} fps, imgsz {args.imgsz}, "
        f"line {line[0]}->{line[1]}; Ultralytics IN = khupho {in_is!r}"
    )
    print()
    print(markdown_table(result))
    print()
    for name, side in result.khupho.items():
        total = side.total(IN) + side.total(OUT)
        print(f"{name}: {total} counted, {result.khupho_events[name]} line_crossing events")
    timing = ", ".join(
        f"{s.label} {s.seconds:.0f} s" for s in [next(iter(result.khupho.values())), *result.ultralytics]
    )
    print(f"time: {timing}; total {elapsed:.0f} s")
    if args.out:
        doc = {
            "video": str(args.video),
            "model": str(args.model),
            "ultralytics_model": str(args.ultralytics_model or args.model),
            "imgsz": args.imgsz,
            "analysis_fps": result.analysis_fps,
            "frames": result.frames,
            "line": {"start": list(line[0]), "end": list(line[1]), "hysteresis_px": args.hysteresis_px},
            "classes": args.classes,
            "ultralytics_in_is": in_is,
            "khupho": {
                k: {**v.as_json(), "line_crossing_events": result.khupho_events[k]}
                for k, v in result.khupho.items()
            },
            "ultralytics": [s.as_json() for s in result.ultralytics],
            "seconds": round(elapsed, 1),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=1))
    mismatched = [
        k for k, s in result.khupho.items() if s.total(IN) + s.total(OUT) != result.khupho_events[k]
    ]
    if mismatched:
        print(f"traffic counts disagree with line_crossing events for {mismatched}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
