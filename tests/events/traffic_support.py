"""Scripted vehicles for the traffic tests: positions on the road, boxes in the picture."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import supervision as sv

from events.speed import RoadPlane
from events.traffic_config import CameraTrafficConfig
from ingest.frame import Frame

IMAGE = [(100.0, 460.0), (290.0, 120.0), (350.0, 120.0), (600.0, 460.0)]
ROAD = [(0.0, 0.0), (0.0, 60.0), (7.5, 60.0), (7.5, 0.0)]
# Two lanes of 3.75 m, both 0..60 m up the road; "up" drives away from the camera.
LANE_UP = [(0.2, 2.0), (0.2, 58.0), (3.7, 58.0), (3.7, 2.0)]
LANE_DOWN = [(3.8, 2.0), (3.8, 58.0), (7.3, 58.0), (7.3, 2.0)]
T0_WALL = 1_714_564_800.0  # 2024-05-01 12:00:00 UTC, 19:00 in Ho Chi Minh City


def plane() -> RoadPlane:
    return RoadPlane(IMAGE, ROAD)


def px(world: Sequence[Sequence[float]]) -> list[tuple[float, float]]:
    return [tuple(p) for p in plane().to_image(np.asarray(world, dtype=float)).round(3).tolist()]


def camera_config(**kw) -> CameraTrafficConfig:  # type: ignore[no-untyped-def]
    data = {
        "calibration": {"image": IMAGE, "road": ROAD},
        "lanes": [
            {"name": "up", "polygon": px(LANE_UP), "direction": px([(2, 10), (2, 40)]), "free_flow_kmh": 60},
            {
                "name": "down",
                "polygon": px(LANE_DOWN),
                "direction": px([(5.5, 40), (5.5, 10)]),
                "free_flow_kmh": 60,
            },
        ],
    }
    data.update(kw)
    return CameraTrafficConfig.model_validate(data)


@dataclass
class Vehicle:
    tid: int
    cls: str
    x: float  # metres across
    y: float  # metres along
    vy: float  # m/s along (negative: towards the camera)


def frame(camera: str, index: int, fps: float, wall0: float = T0_WALL) -> Frame:
    pts = index / fps
    return Frame(
        camera=camera, index=index, pts=pts, wall_time=wall0 + pts, image=np.zeros((4, 4, 3), np.uint8)
    )


def detections(vehicles: Sequence[Vehicle]) -> sv.Detections:
    """Boxes 40 px wide, 30 px tall, whose bottom centre is the vehicle's road position."""
    if not vehicles:
        from events.tracking import empty_tracked

        return empty_tracked()
    anchors = plane().to_image(np.array([(v.x, v.y) for v in vehicles]))
    xyxy = np.column_stack((anchors[:, 0] - 20, anchors[:, 1] - 30, anchors[:, 0] + 20, anchors[:, 1]))
    det = sv.Detections(
        xyxy=xyxy.astype(np.float32),
        confidence=np.full(len(vehicles), 0.9, np.float32),
        class_id=np.zeros(len(vehicles), int),
        tracker_id=np.array([v.tid for v in vehicles]),
    )
    det.data = {"class_name": np.array([v.cls for v in vehicles])}
    return det
