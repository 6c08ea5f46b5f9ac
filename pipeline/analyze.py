"""``khupho analyze``: a recorded video through decode, detection and tracking, as fast as it goes.

With cores to spare, decoding runs in its own thread (PyAV releases the GIL
while it decodes) and feeds a short queue, so decode overlaps inference. On a
machine with two cores or fewer it runs in line instead: onnxruntime already
keeps both cores busy, and a decoder thread preempting one of its workers
stalls the other at the next barrier, which costs more than the decode itself
(measured in docs/notes/bench.md). Analysed frames go to the detector in
batches, each frame through the same :class:`~pipeline.frame_step.FrameStep` as a
live camera's.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import av
import numpy as np
import supervision as sv
from tqdm import tqdm

from detectors import Detector
from events.config import DEFAULT_TIMEZONE, CameraEventsConfig
from events.model import EventTransition, Phase
from ingest import Frame, VideoSource
from ingest.decode import FALLBACK_FPS
from ingest.motion import GateDecision, MotionConfig
from pipeline.frame_step import FrameStep, StepResult

_END = object()


@dataclass
class AnalyzeSummary:
    video: str
    frames_decoded: int
    frames_analysed: int
    seconds: float
    analysed_fps: float
    detections_per_class: dict[str, int]
    tracks_per_class: dict[str, int]
    stage_seconds: dict[str, float] = field(default_factory=dict)
    frames_inferred: int = 0  # analysed frames the detector ran on (fewer than analysed with motion gating)
    events_per_type: dict[str, int] = field(default_factory=dict)  # started events, with rules
    detector: str = ""  # runtime and precision, e.g. "openvino bf16"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


class _DecodeThread(threading.Thread):
    """Runs the source in a thread; frames and the end (or the error) come out of ``frames()``."""

    def __init__(self, source: VideoSource, depth: int) -> None:
        super().__init__(name=f"decode-{source.camera}", daemon=True)
        self.source = source
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.decode_seconds = 0.0
        self._stopping = threading.Event()

    def run(self) -> None:
        it = iter(self.source)
        try:
            while not self._stopping.is_set():
                t0 = time.perf_counter()
                frame = next(it, None)
                self.decode_seconds += time.perf_counter() - t0
                if frame is None:
                    break
                self.queue.put(frame)
        except Exception as exc:  # handed to the consumer, which raises it with its message intact
            self.queue.put(exc)
        finally:
            self.queue.put(_END)

    def frames(self) -> Iterator[Frame]:
        while True:
            item = self.queue.get()
            if item is _END:
                return
            if isinstance(item, Exception):
                raise item
            yield item

    def stop(self) -> None:
        self._stopping.set()
        while self.is_alive():  # unblock a put() on a full queue
            try:
                self.queue.get_nowait()
            except queue.Empty:
                self.join(0.05)


class _InlineDecoder:
    """The source decoded on demand in the caller's thread, with the same face as ``_DecodeThread``."""

    def __init__(self, source: VideoSource) -> None:
        self.source = source
        self.decode_seconds = 0.0

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def frames(self) -> Iterator[Frame]:
        it = iter(self.source)
        while True:
            t0 = time.perf_counter()
            frame = next(it, None)
            self.decode_seconds += time.perf_counter() - t0
            if frame is None:
                return
            yield frame


class _AnnotatedWriter:
    """Writes analysed frames with boxes, labels and track ids to an H.264 mp4."""

    def __init__(self, path: Path, fps: float, shape: tuple[int, int]) -> None:
        self.container = av.open(str(path), mode="w")
        self.stream = self.container.add_stream("libx264", rate=max(1, round(fps)))
        self.stream.height, self.stream.width = shape[0] - shape[0] % 2, shape[1] - shape[1] % 2
        self.stream.pix_fmt = "yuv420p"
        self.stream.options = {"preset": "veryfast", "crf": "23"}
        self.boxes = sv.BoxAnnotator(thickness=2)
        self.labels = sv.LabelAnnotator(text_scale=0.4, text_padding=3)

    def write(self, image: np.ndarray, det: sv.Detections) -> None:
        canvas = self.boxes.annotate(image.copy(), det)
        names = det.data.get("class_name", np.array([], object))
        if det.tracker_id is not None:
            labels = [
                f"#{t} {n} {c:.2f}" for t, n, c in zip(det.tracker_id, names, det.confidence, strict=True)
            ]
        else:
            labels = [f"{n} {c:.2f}" for n, c in zip(names, det.confidence, strict=True)]
        canvas = self.labels.annotate(canvas, det, labels=labels)
        h, w = self.stream.height, self.stream.width
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(canvas[:h, :w]), format="bgr24")
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


def analyze_video(
    video: Path,
    detector: Detector,
    out_dir: Path,
    analysis_fps: float | None = None,
    batch_size: int | None = None,
    annotate: bool = False,
    track: bool = True,
    progress: bool = True,
    motion: MotionConfig | None = None,
    rules: CameraEventsConfig | None = None,
    timezone: str | None = None,
    decode_thread: bool | None = None,
) -> AnalyzeSummary:
    """Analyse ``video``; writes detections.jsonl, summary.json and, with ``annotate``, annotated.mp4.

    Each frame goes through the same :class:`FrameStep` as a live camera's, in batches of
    ``batch_size`` detector pictures (None: the detector's ``max_batch``). ``motion`` gates
    the detector (a still frame with no track held gets an empty detection set). ``rules``
    (with ``track``) runs the camera's tracker and rules as the service does and writes the
    transitions to events.jsonl. ``decode_thread`` None decodes in a thread of its own on
    machines with more than two cores, in line otherwise.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    few_cores = (os.cpu_count() or 1) <= 2
    if decode_thread is None:
        decode_thread = not few_cores
    batch_size = batch_size or detector.max_batch
    # FFmpeg's own threads (one per core by default) compete with inference the same way.
    source = VideoSource(
        video, camera=video.stem, analysis_fps=analysis_fps, decode_threads=1 if few_cores else 0
    )
    info = source.info
    rate = analysis_fps or info.fps or FALLBACK_FPS
    expected = int(info.duration * rate) if info.duration else None
    step = FrameStep(
        video.stem,
        analysis_fps=rate,
        timezone=timezone or DEFAULT_TIMEZONE,
        events=(rules or CameraEventsConfig()) if track else None,
        motion=motion,
    )
    decoder = _DecodeThread(source, depth=2 * batch_size) if decode_thread else _InlineDecoder(source)
    record = _Record(out_dir, rate, annotate, events=track and rules is not None)
    analysed = inferred = 0
    t0 = time.perf_counter()
    stage0 = dict(getattr(detector, "stage_seconds", {}))
    # Frames waiting for the next detector call, in stream order, with what the gate decided.
    pending: list[tuple[Frame, GateDecision]] = []
    decoder.start()
    try:
        with tqdm(total=expected, unit="frame", desc=video.name, disable=not progress) as bar:

            def flush() -> None:
                nonlocal analysed, inferred
                chosen = [f.image for f, d in pending if d is GateDecision.DETECT]
                found = iter(detector.detect(chosen) if chosen else [])
                for f, decision in pending:
                    detections = next(found) if decision is GateDecision.DETECT else None
                    record.add(f, step.finish(f, decision, detections))
                analysed += len(pending)
                inferred += len(chosen)
                bar.update(len(pending))
                pending.clear()

            queued = 0
            for frame in decoder.frames():
                decision = step.gate(frame, queued=queued)
                pending.append((frame, decision))
                queued += decision is GateDecision.DETECT
                if queued == batch_size or queued == 0:
                    flush()
                    queued = 0
            if pending:
                flush()
    finally:
        decoder.stop()
        record.close(step.close())
    seconds = time.perf_counter() - t0
    stages = {k: v - stage0.get(k, 0.0) for k, v in getattr(detector, "stage_seconds", {}).items()}
    stages["decode"] = decoder.decode_seconds
    if motion is not None:
        stages["motion"] = step.seconds.motion
    if track:
        stages["track"] = step.seconds.track
        if rules is not None:
            stages["rules"] = step.seconds.rules
    summary = AnalyzeSummary(
        video=str(video),
        frames_decoded=source.stats.decoded,
        frames_analysed=analysed,
        seconds=round(seconds, 3),
        analysed_fps=round(analysed / seconds, 2) if seconds > 0 else 0.0,
        detections_per_class=dict(record.per_class.most_common()),
        tracks_per_class=dict(Counter(record.track_classes.values()).most_common()) if track else {},
        stage_seconds={k: round(v, 3) for k, v in stages.items()},
        frames_inferred=inferred,
        events_per_type=dict(record.started.most_common()) if track and rules is not None else {},
        detector=f"{detector.runtime} {detector.precision}",
    )
    (out_dir / "summary.json").write_text(summary.to_json())
    return summary


class _Record:
    """What ``khupho analyze`` writes and counts: detections.jsonl, events.jsonl, annotated.mp4."""

    def __init__(self, out_dir: Path, rate: float, annotate: bool, *, events: bool) -> None:
        self.out_dir = out_dir
        self.rate = rate
        self.annotate = annotate
        self.per_class: Counter[str] = Counter()
        self.track_classes: dict[int, str] = {}
        self.started: Counter[str] = Counter()
        self._detections = (out_dir / "detections.jsonl").open("w")
        self._events = (out_dir / "events.jsonl").open("w") if events else None
        self._writer: _AnnotatedWriter | None = None

    def add(self, frame: Frame, result: StepResult) -> None:
        det = result.detections
        names = det.data["class_name"].tolist()
        self.per_class.update(names)
        if det.tracker_id is not None and len(det):
            self.track_classes.update(zip(det.tracker_id.tolist(), names, strict=True))
        self._write_events(result.transitions)
        self._detections.write(_jsonl_line(frame, det))
        if self.annotate:
            if self._writer is None:
                self._writer = _AnnotatedWriter(self.out_dir / "annotated.mp4", self.rate, frame.shape)
            self._writer.write(frame.image, det)

    def close(self, last: StepResult) -> None:
        self._write_events(last.transitions)
        self._detections.close()
        if self._events is not None:
            self._events.close()
        if self._writer is not None:
            self._writer.close()

    def _write_events(self, transitions: list[EventTransition]) -> None:
        for t in transitions:
            if t.phase is Phase.START:
                self.started[t.event.type.value] += 1
            if self._events is not None:
                self._events.write(t.model_dump_json() + "\n")


def _jsonl_line(frame: Frame, det: sv.Detections) -> str:
    boxes = np.column_stack((np.round(det.xyxy, 2), np.round(det.confidence, 4), det.class_id)).tolist()
    record = {
        "frame": frame.index,
        "pts": round(frame.pts, 4),
        "boxes": [[*b[:5], int(b[5])] for b in boxes],
        "classes": det.data["class_name"].tolist(),
    }
    if det.tracker_id is not None:
        record["track_ids"] = det.tracker_id.tolist()
    return json.dumps(record) + "\n"
