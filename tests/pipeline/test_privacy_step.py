"""Privacy masks in the frame step: the real detector never sees what a mask covers."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path

import cv2
import numpy as np
import supervision as sv

from detectors import DetectorConfig, YoloOnnxDetector
from ingest.frame import Frame
from ingest.privacy import PrivacyMask
from pipeline.frame_step import FrameStep


def _people(detector: YoloOnnxDetector, step: FrameStep, image: np.ndarray) -> np.ndarray:
    seen: list[np.ndarray] = []

    def submit(picture: np.ndarray) -> Future[sv.Detections]:
        seen.append(picture.copy())
        done: Future[sv.Detections] = Future()
        done.set_result(detector.detect([picture])[0])
        return done

    frame = Frame("cam", 0, 0.0, 1_700_000_000.0, image)
    result = step.run(frame, submit=submit)
    assert len(seen) == 1
    persons = result.detections[result.detections.data["class_name"] == "person"]
    return persons.xyxy


def test_people_under_a_mask_are_not_detected(shared_dir: Path) -> None:
    detector = YoloOnnxDetector(shared_dir / "models" / "yolov8n-coco.onnx", DetectorConfig(imgsz=640))
    image = cv2.imread(str(shared_dir / "images" / "bus.jpg"))  # 810 x 1080, four people
    unmasked = FrameStep("cam", analysis_fps=5, timezone="UTC", events=None)
    everyone = _people(detector, unmasked, image.copy())
    left = everyone[(everyone[:, 0] + everyone[:, 2]) / 2 < 405]
    assert len(everyone) >= 3 and len(left) >= 2
    # The left half of the street is someone's yard: masked, its people are never seen.
    yard = PrivacyMask([[(0, 0), (405, 0), (405, 1080), (0, 1080)]])
    masked = FrameStep("cam", analysis_fps=5, timezone="UTC", events=None, privacy=yard)
    picture = image.copy()
    found = _people(detector, masked, picture)
    assert (picture[:, :405] == 0).all()  # blacked out in place: snapshots of this frame show black too
    assert len(found) == len(everyone) - len(left)
    assert ((found[:, 0] + found[:, 2]) / 2 > 405).all()
