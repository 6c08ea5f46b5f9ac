"""The report desk as ``khupho run`` builds it: photos through the real detector (people's heads) and
YuNet (faces), stored through the upload spool; evidence release wired to the service."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from api.config import parse_config
from api.reports.desk import Submission
from api.service import Service
from events.redaction import head_regions

pytestmark = pytest.mark.slow


def test_service_blurs_faces_and_heads_of_people_in_residents_photos(
    tmp_path: Path, footage_dir: Path, models_dir: Path, shared_dir: Path
) -> None:
    config = parse_config(
        {
            "detector": {"model": str(models_dir / "yolov8n-coco.onnx"), "imgsz": 640},
            "storage": {
                "database": {"path": str(tmp_path / "events.db")},
                "objects": {"type": "local", "root": str(tmp_path / "media")},
            },
            "privacy": {"face_model": str(models_dir / "face_detection_yunet.onnx")},
            "wards": {"w1": {"name": "Phường Bến Nghé"}},
            "khu_pho": {"kp1": {"name": "Khu phố 1", "ward": "w1"}},
            "reports": {"submits_per_hour": 100},
            "cameras": {
                "street": {
                    "enabled": False,  # no camera needs to run for this
                    "khu_pho": "kp1",
                    "replay": {"path": str(footage_dir / "traffic_intersection_cctv_640x480_h264.mp4")},
                }
            },
        }
    )
    svc = Service(config).start()
    try:
        data = (shared_dir / "images" / "bus.jpg").read_bytes()
        original = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        people = svc._people(original)
        assert len(people) >= 3  # the bus picture's pedestrians, found by the service's detector
        report, code = svc.reports.submit(
            Submission("traffic", "Xe buýt đỗ chắn lối đi", address_string="Bến xe", photo=data),
            address="127.0.0.1",
        )
        assert report.khu_pho is None and report.ward == "w1"  # no choice, no boundary: the ward queue
        assert svc.uploads.drain(10)
        stored = cv2.imdecode(np.frombuffer(svc.objects.get(report.media_key), np.uint8), cv2.IMREAD_COLOR)
        assert stored.shape == original.shape
        for x1, y1, x2, y2 in np.rint(head_regions(people)).astype(int):
            region = (slice(max(0, y1), y2), slice(max(0, x1), x2))
            changed = np.abs(stored[region].astype(np.float64) - original[region]).mean()
            assert changed > 4, changed  # every person's head is pixelated
        assert svc.reports.track(code, address="127.0.0.1").id == report.id
    finally:
        svc.stop()
