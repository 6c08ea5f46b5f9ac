"""ByteTrack ids on real footage with the real detector: few ids per vehicle, ids kept through a blackout.

The first 10 s of the intersection clip at 10 fps: cars standing in the queue
at the top of the picture the whole time, and about ten cars driving through or
turning. Measured with yolov8n-coco.onnx at 640 (onnxruntime 1.32): 13 ids, at
most 10 tracked vehicles in one frame, 3 ids spanning the whole stretch, no id
shorter than 5 frames; 6 tracks live on both sides of the blackout (2 of them
moving), all keep their ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import supervision as sv

from detectors import DetectorConfig, YoloOnnxDetector
from ingest import VideoSource
from tests.events.test_tracking import summarize_tracks, track_detections

CLIP = "traffic_intersection_cctv_640x480_h264.mp4"
FPS = 10.0
SECONDS = 10.0
IMGSZ = 640
# Vehicles, not only "car": the detector's label of one car flickers between car,
# truck and bus, and ByteTrack is class-agnostic, so a track is a vehicle.
VEHICLES = ["car", "truck", "bus"]
# A blackout of three analysed frames (0.3 s, well inside the 1.5 s lost buffer)
# while cars are driving through the intersection.
BLACKOUT = range(30, 33)


@dataclass
class Clip:
    images: list[np.ndarray]
    pts: list[float]
    detections: list[sv.Detections]


@pytest.fixture(scope="module")
def detector(models_dir: Path) -> YoloOnnxDetector:
    config = DetectorConfig(imgsz=IMGSZ, classes=VEHICLES, intra_op_threads=2)
    return YoloOnnxDetector(models_dir / "yolov8n-coco.onnx", config)


@pytest.fixture(scope="module")
def clip(footage_dir: Path, detector: YoloOnnxDetector) -> Clip:
    images, pts = [], []
    for frame in VideoSource(footage_dir / CLIP, analysis_fps=FPS):
        if frame.pts >= SECONDS:
            break
        images.append(frame.image)
        pts.append(frame.pts)
    return Clip(images, pts, [detector.detect([im])[0] for im in images])


def _box_of(tracked: sv.Detections, track_id: int) -> np.ndarray:
    return tracked.xyxy[tracked.tracker_id == track_id][0]


@pytest.mark.slow
def test_few_ids_per_vehicle(clip: Clip) -> None:
    assert len(clip.pts) == 100
    tracked = track_detections(clip.detections, clip.pts, FPS)
    summary = summarize_tracks(tracked)  # also checks: no -1 ids, no id twice in a frame
    # The most vehicles the tracker holds at once (confirmed, matched in that frame).
    most_at_once = max(len(t) for t in tracked)
    assert 8 <= most_at_once <= 14
    # Each vehicle keeps one id while it is in view: ids are few compared with the
    # vehicles seen at once (a fragmenting tracker gives several times more).
    assert len(summary.ids) <= 2 * most_at_once
    assert sum(n < 5 for n in summary.frames_per_id.values()) <= 2
    # Cars standing in the queue keep one id from start to end.
    whole_clip = [i for i, n in summary.frames_per_id.items() if n >= 0.95 * len(tracked)]
    assert len(whole_clip) >= 2


@pytest.mark.slow
def test_ids_survive_a_blackout(clip: Clip, detector: YoloOnnxDetector) -> None:
    blank = np.zeros_like(clip.images[0])
    # The detector really runs on the blacked-out pictures (and finds nothing there).
    blackout_dets = [detector.detect([blank])[0] for _ in BLACKOUT]
    assert all(len(d) == 0 for d in blackout_dets)
    gapped = list(clip.detections)
    for i, d in zip(BLACKOUT, blackout_dets, strict=True):
        gapped[i] = d

    base = track_detections(clip.detections, clip.pts, FPS)
    hidden = track_detections(gapped, clip.pts, FPS)
    before, after = BLACKOUT.start - 1, BLACKOUT.stop
    history = summarize_tracks(base[: before + 1]).frames_per_id
    # Long-lived tracks on both sides of the blackout in the undisturbed run.
    long_lived = {
        int(t) for t in base[before].tracker_id if history[int(t)] >= 20 and t in base[after].tracker_id
    }
    moving = {t for t in long_lived if np.abs(_box_of(base[before], t) - _box_of(base[after], t)).max() > 10}
    assert len(long_lived) >= 4 and len(moving) >= 2
    # Same inputs before the blackout: same ids.
    np.testing.assert_array_equal(hidden[before].tracker_id, base[before].tracker_id)
    assert all(len(hidden[i]) == 0 for i in BLACKOUT)
    # Every long-lived track comes back under its own id on the first frame after the
    # blackout, on the same object as in the undisturbed run.
    for t in sorted(long_lived):
        assert t in hidden[after].tracker_id, f"track {t} lost its id"
        a, b = _box_of(hidden[after], t), _box_of(base[after], t)
        iou = sv.box_iou_batch(a[None], b[None])[0, 0]
        assert iou > 0.8, f"track {t}: IoU {iou:.2f} with the undisturbed run"
