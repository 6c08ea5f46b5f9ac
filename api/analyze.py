"""``khupho analyze``: a recorded video through decode, detection and tracking, as fast as it goes.

With cores to spare, decoding runs in its own thread (PyAV releases the GIL
while it decodes) and feeds a short queue, so decode overlaps inference. On a
machine with two cores or fewer it runs in line instead: onnxruntime already
keeps both cores busy, and a decoder thread preempting one of its workers
stalls the other at the next barrier, which costs more than the decode itself
(measured in docs/notes/bench.md). Analysed frames go to the detector in
batches.
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
from events.config import CameraEventsConfig
from events.model import EventTransition, Phase
from events.tracking import empty_tracked
from ingest import Frame, VideoSource
from ingest.motion import GateDecision, MotionConfig, MotionGate

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
    batch_size: int = 2,
    annotate: bool = False,
    track: bool = True,
    progress: bool = True,
    motion: MotionConfig | None = None,
    rules: CameraEventsConfig | None = None,
    timezone: str | None = None,
    decode_thread: bool | None = None,
) -> AnalyzeSummary:
    """Analyse ``video``; writes detections.jsonl, summary.json and, with ``annotate``, annotated.mp4.

    ``motion`` gates the detector (a still frame with no track held gets an
    empty detection set). ``rules`` (with ``track``) runs the camera's tracker
    and rules as the service does and writes the transitions to events.jsonl.
    ``decode_thread`` None decodes in a thread of its own on machines with more
    than two cores, in line otherwise.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    few_cores = (os.cpu_count() or 1) <= 2
    if decode_thread is None:
        decode_thread = not few_cores
    # FFmpeg's own threads (one per core by default) compete with inference the same way.
    source = VideoSource(
        video, camera=video.stem, analysis_fps=analysis_fps, decode_threads=1 if few_cores else 0
    )
    info = source.info
    rate = analysis_fps or info.fps or 25.0
    expected = int(info.duration * rate) if info.duration else None
    events = _Events(video.stem, rate, rules, timezone, out_dir) if track else None
    gate = MotionGate(motion) if motion is not None else None
    decoder = _DecodeThread(source, depth=2 * batch_size) if decode_thread else _InlineDecoder(source)
    writer: _AnnotatedWriter | None = None
    per_class: Counter[str] = Counter()
    analysed = inferred = 0
    gate_seconds = 0.0
    t0 = time.perf_counter()
    stage0 = dict(getattr(detector, "stage_seconds", {}))
    # Frames waiting for the next detector call, in stream order, with what the gate decided.
    pending: list[tuple[Frame, GateDecision]] = []
    last_found = empty_tracked()  # the latest detections, for frames that reuse them
    decoder.start()
    try:
        with (
            (out_dir / "detections.jsonl").open("w") as jsonl,
            tqdm(total=expected, unit="frame", desc=video.name, disable=not progress) as bar,
        ):

            def flush() -> None:
                nonlocal writer, analysed, inferred, last_found
                chosen = [f.image for f, d in pending if d is GateDecision.DETECT]
                found = iter(detector.detect(chosen) if chosen else [])
                for f, decision in pending:
                    if decision is GateDecision.DETECT:
                        det = last_found = next(found)
                    else:
                        det = last_found if decision is GateDecision.REUSE else empty_tracked()
                    if events is not None:
                        det = events.process(f, det)
                    per_class.update(det.data["class_name"].tolist())
                    jsonl.write(_jsonl_line(f, det))
                    if annotate:
                        if writer is None:
                            writer = _AnnotatedWriter(out_dir / "annotated.mp4", rate, f.shape)
                        writer.write(f.image, det)
                analysed += len(pending)
                inferred += len(chosen)
                bar.update(len(pending))
                pending.clear()

            frames = decoder.frames()
            while True:
                frame = next(frames, None)
                if frame is None:
                    break
                runs = sum(d is GateDecision.DETECT for _, d in pending)
                decision = GateDecision.DETECT
                if gate is not None:
                    t1 = time.perf_counter()
                    # Frames already chosen for this batch may start tracks: count them as held, so a
                    # batch never skips a frame that frame-by-frame gating would have sent.
                    held = (events.active_tracks if events is not None else 0) + runs
                    decision = gate.decide(frame.image, frame.pts, held)
                    gate_seconds += time.perf_counter() - t1
                pending.append((frame, decision))
                runs += decision is GateDecision.DETECT
                if runs == batch_size or runs == 0:
                    flush()
            if pending:
                flush()
    finally:
        decoder.stop()
        if writer is not None:
            writer.close()
        if events is not None:
            events.close()
    seconds = time.perf_counter() - t0
    stages = {k: v - stage0.get(k, 0.0) for k, v in getattr(detector, "stage_seconds", {}).items()}
    stages["decode"] = decoder.decode_seconds
    if gate is not None:
        stages["motion"] = gate_seconds
    if events is not None:
        stages["track"] = events.track_seconds
        if rules is not None:
            stages["rules"] = events.rules_seconds
    summary = AnalyzeSummary(
        video=str(video),
        frames_decoded=source.stats.decoded,
        frames_analysed=analysed,
        seconds=round(seconds, 3),
        analysed_fps=round(analysed / seconds, 2) if seconds > 0 else 0.0,
        detections_per_class=dict(per_class.most_common()),
        tracks_per_class=dict(Counter(events.track_classes.values()).most_common()) if events else {},
        stage_seconds={k: round(v, 3) for k, v in stages.items()},
        frames_inferred=inferred,
        events_per_type=dict(events.started.most_common()) if events is not None else {},
    )
    (out_dir / "summary.json").write_text(summary.to_json())
    return summary


class _Events:
    """Tracking (and, with rules, the camera's rules) of one analysed video, with stage timings."""

    def __init__(
        self, camera: str, rate: float, rules: CameraEventsConfig | None, timezone: str | None, out_dir: Path
    ) -> None:
        from events.camera_events import CameraEventProcessor
        from events.config import DEFAULT_TIMEZONE, TrackerConfig
        from events.tracking import ObjectTracker

        tz = timezone or DEFAULT_TIMEZONE
        self.processor = CameraEventProcessor(camera, rules, rate, tz) if rules is not None else None
        self.tracker = self.processor.tracker if self.processor else ObjectTracker(TrackerConfig(), rate)
        self.track_classes: dict[int, str] = {}
        self.started: Counter[str] = Counter()
        self.track_seconds = self.rules_seconds = 0.0
        self._events_file = (out_dir / "events.jsonl").open("w") if rules is not None else None
        # The processor calls the tracker itself: time it from the inside, the rest of process() is rules.
        inner = self.tracker.update

        def timed_update(detections: sv.Detections, pts: float) -> sv.Detections:
            t0 = time.perf_counter()
            try:
                return inner(detections, pts)
            finally:
                self.track_seconds += time.perf_counter() - t0

        self.tracker.update = timed_update  # type: ignore[method-assign]

    @property
    def active_tracks(self) -> int:
        return self.tracker.active_tracks

    def process(self, frame: Frame, det: sv.Detections) -> sv.Detections:
        if self.processor is None:
            det = self.tracker.update(det, frame.pts)
        else:
            t0, tracked0 = time.perf_counter(), self.track_seconds
            result = self.processor.process(frame, det)
            self.rules_seconds += time.perf_counter() - t0 - (self.track_seconds - tracked0)
            self._write(result.transitions)
            det = result.tracked_detections
        if det.tracker_id is not None and len(det):
            names = det.data["class_name"].tolist()
            self.track_classes.update(zip(det.tracker_id.tolist(), names, strict=True))
        return det

    def close(self) -> None:
        if self.processor is not None:
            self._write(self.processor.close().transitions)
        if self._events_file is not None:
            self._events_file.close()
            self._events_file = None

    def _write(self, transitions: list[EventTransition]) -> None:
        for t in transitions:
            if t.phase is Phase.START:
                self.started[t.event.type.value] += 1
            if self._events_file is not None:
                self._events_file.write(t.model_dump_json() + "\n")


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
