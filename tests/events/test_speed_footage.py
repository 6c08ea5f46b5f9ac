"""Speeds on the highway clip with the real detector and tracker, calibrated as documented.

The calibration (``benchmarks.highway_calibration``) takes the lane width (3.75 m)
across the road and a scale along it fitted once to the camera's own on-screen lane
readings (see there). What this test checks is what that one number does not decide:
every car gets a plausible speed, each car's speed is steady, cars in the left (fast)
lane are faster than those in the right lane, every count is in the lane's direction,
and nobody is flagged as driving the wrong way. Measured (yolov8n, imgsz 320, 10 fps,
20 s): 15 cars with a speed, right lane median about 110 km/h, left lane about 140.
"""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from benchmarks.highway_calibration import highway_config
from detectors import DetectorConfig, YoloOnnxDetector
from events.config import TrackerConfig
from events.lanes import CameraTraffic
from events.tracking import ObjectTracker
from events.traffic_config import CongestionConfig
from ingest import VideoSource

CLIP = "traffic_highway_cctv_320x240_mpeg4.avi"
FPS = 10.0
SECONDS = 20.0


@pytest.mark.slow
def test_highway_car_speeds_are_plausible(footage_dir: Path, models_dir: Path) -> None:
    config = highway_config()
    detector = YoloOnnxDetector(
        models_dir / "yolov8n-coco.onnx",
        DetectorConfig(imgsz=320, classes=["car", "truck", "bus"], intra_op_threads=2),
    )
    tracker = ObjectTracker(TrackerConfig(), FPS)
    traffic = CameraTraffic("highway", config, CongestionConfig(), ZoneInfo("UTC"))
    lane = traffic.lanes[0]
    visits: dict[int, tuple[str, list[float], float]] = {}  # track -> class, speeds, lateral position
    transitions = []
    counts = []
    for frame in VideoSource(footage_dir / CLIP, analysis_fps=FPS):
        if frame.pts >= SECONDS:
            break
        out = traffic.process(frame, tracker.update(detector.detect([frame.image])[0], frame.pts))
        transitions += out.transitions
        counts += out.counts
        for tid, visit in lane.visits.items():
            visits[tid] = (visit.class_name, list(visit.speeds), visit.last[0])
    counts += traffic.close(0.0).counts

    cars = {tid: v for tid, v in visits.items() if v[0] == "car" and len(v[1]) >= 3}
    medians = {tid: float(np.median(s)) for tid, (_, s, _) in cars.items()}
    assert len(cars) >= 10
    assert all(60.0 <= m <= 170.0 for m in medians.values()), medians
    assert 90.0 <= float(np.median(list(medians.values()))) <= 140.0
    # Each car's speed is steady while it crosses the zone (robust window, no jumps).
    for _, speeds, _ in cars.values():
        assert np.percentile(speeds, 90) - np.percentile(speeds, 10) <= 0.25 * np.median(speeds) + 5
    # The dashed line is x = 0: the left (fast) lane is x < 0.
    left = [medians[t] for t, (_, _, x) in cars.items() if x < 0]
    right = [medians[t] for t, (_, _, x) in cars.items() if x > 0]
    assert left and right and np.median(left) > np.median(right)
    assert {c.direction for c in counts} == {"forward"} and sum(c.count for c in counts) >= 12
    assert transitions == []  # no wrong-way (or other) events on a normal highway
