"""``khupho analyze``: a recorded video through decode, detection and tracking, as fast as it goes.

Decoding runs in its own thread (PyAV releases the GIL while it decodes) and
feeds a short queue, so decode overlaps inference; analysed frames go to the
detector in batches.
"""

from __future__ import annotations

import json
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
from ingest import Frame, VideoSource

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
    batch_size: int = 4,
    annotate: bool = False,
    track: bool = True,
    progress: bool = True,
) -> AnalyzeSummary:
    """Analyse ``video``; writes detections.jsonl, summary.json and, with ``annotate``, annotated.mp4."""
    out_dir.mkdir(parents=True, exist_ok=True)
    source = VideoSource(video, camera=video.stem, analysis_fps=analysis_fps)
    info = source.info
    rate = analysis_fps or info.fps or 25.0
    expected = int(info.duration * rate) if info.duration else None
    tracker = None
    if track:
        from events.config import TrackerConfig
        from events.tracking import ObjectTracker

        tracker = ObjectTracker(TrackerConfig(), analysis_fps=rate)
    decoder = _DecodeThread(source, depth=2 * batch_size)
    writer: _AnnotatedWriter | None = None
    per_class: Counter[str] = Counter()
    track_classes: dict[int, str] = {}
    analysed = 0
    t0 = time.perf_counter()
    stage0 = dict(getattr(detector, "stage_seconds", {}))
    track_seconds = 0.0
    decoder.start()
    try:
        with (
            (out_dir / "detections.jsonl").open("w") as jsonl,
            tqdm(total=expected, unit="frame", desc=video.name, disable=not progress) as bar,
        ):
            batch: list[Frame] = []
            frames = decoder.frames()
            while True:
                frame = next(frames, None)
                if frame is not None:
                    batch.append(frame)
                if batch and (frame is None or len(batch) == batch_size):
                    results = detector.detect([f.image for f in batch])
                    for f, det in zip(batch, results, strict=True):
                        if tracker is not None:
                            t1 = time.perf_counter()
                            det = tracker.update(det, f.pts)
                            track_seconds += time.perf_counter() - t1
                            if det.tracker_id is not None and len(det):
                                track_classes.update(
                                    zip(det.tracker_id.tolist(), det.data["class_name"].tolist(), strict=True)
                                )
                        per_class.update(det.data["class_name"].tolist())
                        jsonl.write(_jsonl_line(f, det))
                        if annotate:
                            if writer is None:
                                writer = _AnnotatedWriter(out_dir / "annotated.mp4", rate, f.shape)
                            writer.write(f.image, det)
                    analysed += len(batch)
                    bar.update(len(batch))
                    batch = []
                if frame is None:
                    break
    finally:
        decoder.stop()
        if writer is not None:
            writer.close()
    seconds = time.perf_counter() - t0
    stages = {k: v - stage0.get(k, 0.0) for k, v in getattr(detector, "stage_seconds", {}).items()}
    stages["decode"] = decoder.decode_seconds
    if tracker is not None:
        stages["track"] = track_seconds
    summary = AnalyzeSummary(
        video=str(video),
        frames_decoded=source.stats.decoded,
        frames_analysed=analysed,
        seconds=round(seconds, 3),
        analysed_fps=round(analysed / seconds, 2) if seconds > 0 else 0.0,
        detections_per_class=dict(per_class.most_common()),
        tracks_per_class=dict(Counter(track_classes.values()).most_common()),
        stage_seconds={k: round(v, 3) for k, v in stages.items()},
    )
    (out_dir / "summary.json").write_text(summary.to_json())
    return summary


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
