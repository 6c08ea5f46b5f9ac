"""The calibration of the highway clip (``traffic_highway_cctv_320x240_mpeg4.avi``) and its picture.

How it was chosen (README, "Calibrating a camera"):

- across the road: the two lines bounding the right-hand lane of the carriageway going away
  from the camera (the dashed lane line and the solid edge line), 3.75 m apart (a motorway
  lane); the image points were found on the median of 75 frames (cars removed): the dashes'
  near ends by their brightness profile along the line, the edge line as the brightest
  pixel of the same rows;
- along the road: five dash periods of the dashed line (from the near end of one dash to
  the near end of the fifth after it). The marking standard of this road is not known to
  us: the common motorway period of 12 m (4.5 m dash, 7.5 m gap) does not fit the picture
  (here the dashes are twice as long as the gaps) and gives 225 km/h. The camera burns its
  own lane readings into the picture (top left, column "FSp": 92-116 over the clip, whose
  clock runs in real time); the 28.5 m used here (a period of 5.7 m) puts the slow lane's
  cars at 100-120 km/h, in line with those readings. So the scale along the road is fitted
  to the camera's own readings, once; what the test checks independently is the rest
  (see tests/events/test_speed_footage.py).

``python -m benchmarks.highway_calibration --video ../shared/footage/traffic_highway_cctv_320x240_mpeg4.avi
--out docs/images/highway_calibration.jpg`` draws the four points, the lane zone and a
metre grid of the road plane on a frame of the clip.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from events.traffic_config import CameraTrafficConfig
from ingest import VideoSource

HIGHWAY_TRAFFIC: dict[str, Any] = {
    "calibration": {
        "image": [[137.9, 219.2], [202.5, 142.2], [269.0, 142.2], [235.0, 219.2]],
        "road": [[0.0, 0.0], [0.0, 28.5], [3.75, 28.5], [3.75, 0.0]],
    },
    "lanes": [
        {
            # Both lanes of the carriageway going away from the camera.
            "name": "away",
            "polygon": [[18, 235], [160, 120], [279, 120], [228, 235]],
            "direction": [[150, 230], [210, 140]],
            "free_flow_kmh": 110,
        }
    ],
}


def highway_config() -> CameraTrafficConfig:
    return CameraTrafficConfig.model_validate(HIGHWAY_TRAFFIC)


def draw(image: np.ndarray, config: CameraTrafficConfig, scale: int = 3) -> np.ndarray:
    plane = config.calibration.plane()
    big = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)

    def px(points: np.ndarray) -> np.ndarray:
        return np.round(np.asarray(points) * scale).astype(np.int32)

    # Metre grid of the road plane: lines every 5 m along, every 1.875 m (half a lane) across.
    for y in np.arange(-10.0, 61.0, 5.0):
        line = plane.to_image(np.column_stack((np.linspace(-4.5, 5.5, 30), np.full(30, y))))
        cv2.polylines(big, [px(line)], False, (200, 200, 200), 1, cv2.LINE_AA)
        label = px(plane.to_image(np.array([[5.6, y]])))[0]
        if 0 <= label[1] < big.shape[0]:
            cv2.putText(
                big,
                f"{y:.0f} m",
                tuple(label),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.45,
                (255, 255, 255),
                1,
                cv2.LINE_AA,
            )
    for x in np.arange(-3.75, 5.7, 1.875):
        line = plane.to_image(np.column_stack((np.full(30, x), np.linspace(-10, 60, 30))))
        cv2.polylines(big, [px(line)], False, (200, 200, 200), 1, cv2.LINE_AA)
    for lane in config.lanes:
        cv2.polylines(big, [px(lane.polygon)], True, (0, 200, 255), 2, cv2.LINE_AA)
        if lane.direction is not None:
            a, b = px(lane.direction)
            cv2.arrowedLine(big, tuple(a), tuple(b), (0, 200, 255), 2, cv2.LINE_AA, tipLength=0.08)
    image_pts, road_pts = config.calibration.image, config.calibration.road
    for (ix, iy), (rx, ry) in zip(image_pts, road_pts, strict=True):
        c = px([ix, iy])
        cv2.circle(big, tuple(c), 6, (0, 0, 255), -1, cv2.LINE_AA)
        cv2.putText(
            big,
            f"({rx:g}, {ry:g}) m",
            (c[0] + 8, c[1] - 8),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5,
            (0, 0, 255),
            2,
            cv2.LINE_AA,
        )
    return big


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--frame", type=int, default=100)
    args = ap.parse_args(argv)
    for i, frame in enumerate(VideoSource(args.video)):
        if i == args.frame:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(args.out), draw(frame.image, highway_config()), [cv2.IMWRITE_JPEG_QUALITY, 85])
            print(args.out)
            return
    raise SystemExit(f"{args.video} has fewer than {args.frame + 1} frames")


if __name__ == "__main__":
    main()
