"""``khupho demo``: the shared sample clips replayed as cameras, with example lines and zones."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from api.config import KhuphoConfig, parse_config

# Rules in each clip's own pixel coordinates (checked on its frames).
DEMO_CAMERAS: dict[str, dict[str, Any]] = {
    "intersection": {
        "name": "Ngã tư (đếm xe)",
        "khu_pho": "kp1",
        "clip": "traffic_intersection_cctv_640x480_h264.mp4",
        "rules": [
            {
                "name": "crossing_line",
                "type": "line_crossing",
                "start": [330, 40],
                "end": [300, 330],
                "classes": ["car", "truck", "bus", "motorcycle", "bicycle"],
            },
        ],
    },
    "residential_lane": {
        "name": "Hẻm dân cư ban đêm (xâm nhập)",
        "khu_pho": "kp2",
        "clip": "security_residential_lane_night_1280x720_h264.mp4",
        "rules": [
            {
                "name": "lane_night_intrusion",
                "type": "zone_intrusion",
                "classes": ["person"],
                "polygon": [[520, 240], [1040, 90], [1100, 710], [420, 710]],
                "active_hours": "20:00-06:00",
            },
            {
                "name": "lane_loitering",
                "type": "loitering",
                "classes": ["person"],
                "min_dwell_s": 30,
                "polygon": [[520, 240], [1040, 90], [1100, 710], [420, 710]],
            },
        ],
    },
    "plaza": {
        "name": "Quảng trường (tụ tập, lảng vảng)",
        "khu_pho": "kp1",
        "clip": "pedestrians_plaza_overhead_1280x720_h264.mp4",
        "rules": [
            {
                "name": "plaza_crowd",
                "type": "crowding",
                "classes": ["person"],
                "min_count": 10,
                "min_duration_s": 3,
                "polygon": [[200, 100], [1000, 100], [1000, 650], [200, 650]],
            },
            {
                "name": "plaza_loitering",
                "type": "loitering",
                "classes": ["person"],
                "min_dwell_s": 6,
                "polygon": [[200, 100], [1000, 100], [1000, 650], [200, 650]],
            },
        ],
    },
    "street": {
        "name": "Phố đi bộ (xâm nhập)",
        "khu_pho": "kp3",
        "clip": "pedestrians_street_pets_768x576_msmpeg4.avi",
        "rules": [
            {
                "name": "square_intrusion",
                "type": "zone_intrusion",
                "classes": ["person"],
                "polygon": [[300, 200], [768, 120], [768, 480], [300, 330]],
            },
        ],
    },
}


# Where the demo cameras are: two wards, three khu phố (names as the console shows them).
DEMO_WARDS = {"ben_thanh": {"name": "Phường Bến Thành"}, "da_kao": {"name": "Phường Đa Kao"}}
DEMO_KHU_PHO = {
    "kp1": {"name": "Khu phố 1", "ward": "ben_thanh"},
    "kp2": {"name": "Khu phố 2", "ward": "ben_thanh"},
    "kp3": {"name": "Khu phố 3", "ward": "da_kao"},
}


def shared_dir() -> Path:
    return Path(os.environ.get("KHUPHO_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def demo_config(
    footage: Path,
    data_dir: Path,
    *,
    cameras: list[str] | None = None,
    imgsz: int = 480,
    fps: float = 3.0,
    speed: float = 1.0,
    port: int = 8080,
    model: str | None = None,
) -> KhuphoConfig:
    chosen = cameras or list(DEMO_CAMERAS)
    unknown = [c for c in chosen if c not in DEMO_CAMERAS]
    if unknown:
        raise ValueError(f"unknown demo camera(s) {unknown}; choose from {list(DEMO_CAMERAS)}")
    return parse_config(
        {
            "detector": {"model": model, "imgsz": imgsz},
            "storage": {
                "database": {"path": str(data_dir / "events.db")},
                "objects": {"type": "local", "root": str(data_dir / "media")},
            },
            "api": {"port": port},
            "wards": DEMO_WARDS,
            "khu_pho": DEMO_KHU_PHO,
            "cameras": {
                cam: {
                    "name": DEMO_CAMERAS[cam]["name"],
                    "khu_pho": DEMO_CAMERAS[cam]["khu_pho"],
                    "replay": {
                        "path": str(footage / DEMO_CAMERAS[cam]["clip"]),
                        "analysis_fps": fps,
                        "speed": speed,
                    },
                    "events": {"rules": DEMO_CAMERAS[cam]["rules"]},
                }
                for cam in chosen
            },
        },
        "demo",
    )
