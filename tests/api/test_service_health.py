"""A camera that gets covered raises camera_blocked through the whole service, and it ends when uncovered."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import av
import httpx
import numpy as np
import pytest

from api.config import parse_config
from api.service import Service
from tests.api.support import login


def covered_clip(source: Path, out: Path) -> Path:
    """The intersection clip with the picture blacked out from 8 s to 16 s (someone covers the lens)."""
    with av.open(str(source)) as src, av.open(str(out), "w") as dst:
        stream = dst.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": "30"}
        for i, frame in enumerate(src.decode(video=0)):
            if i >= 24 * 30:
                break
            img = frame.to_ndarray(format="bgr24")
            if 8 * 30 <= i < 16 * 30:
                img = np.zeros_like(img)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)
    return out


@pytest.mark.slow
def test_covered_camera_raises_camera_blocked(tmp_path: Path, footage_dir: Path, models_dir: Path) -> None:
    clip = covered_clip(footage_dir / "traffic_intersection_cctv_640x480_h264.mp4", tmp_path / "covered.mp4")
    config = parse_config(
        {
            "detector": {"model": str(models_dir / "yolov8n-coco.onnx"), "imgsz": 320},
            "storage": {
                "database": {"path": str(tmp_path / "events.db")},
                "objects": {"root": str(tmp_path / "m")},
            },
            "api": {"port": 0},
            "cameras": {
                "gate": {"replay": {"path": str(clip), "analysis_fps": 4, "speed": 3, "loop": False}}
            },
        }
    )
    service = Service(config)
    urls: list[str] = []
    runner = threading.Thread(target=service.serve, kwargs={"on_ready": urls.append}, daemon=True)
    runner.start()
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and (not urls or service.workers["gate"].source.running):
            time.sleep(0.2)
        time.sleep(1.0)  # the last analysed frames reach the store
        with httpx.Client(base_url=urls[0], timeout=10) as client:
            login(client, "admin", service.first_admin_password)
            events = client.get("/events", params={"camera": "gate"}).json()["items"]
    finally:
        service.shutdown()
        runner.join(30)
    health = [e for e in events if e["type"].startswith("camera_") and e["type"] != "camera_online"]
    assert [e["type"] for e in health] == ["camera_blocked"], health
    blocked = health[0]
    assert 8.0 <= blocked["start_pts"] <= 9.0  # when the cover went on
    assert not blocked["active"] and 16.0 <= blocked["end_pts"] <= 17.5  # and when it came off
    assert blocked["data"]["measure"]
