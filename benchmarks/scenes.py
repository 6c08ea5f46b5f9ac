"""The footage the benchmark runs on: the offline clip and the mixed camera set with its rules.

The mixed set stands for a neighbourhood: busy traffic, a crowded plaza, a
quiet night lane and a parking lot. Rules are in each clip's own pixels; the
night lane's intrusion rule has no active hours so that the result does not
depend on the time of day the benchmark runs.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av

from api.demo import DEMO_CAMERAS

OFFLINE_CLIP = "traffic_intersection_cctv_640x480_h264.mp4"
VEHICLES = ["car", "truck", "bus", "motorcycle", "bicycle"]


@dataclass(frozen=True)
class BenchCamera:
    name: str
    clip: str
    kind: str
    rules: list[dict[str, Any]] = field(default_factory=list)


def _lane_rules() -> list[dict[str, Any]]:
    rules = [dict(r) for r in DEMO_CAMERAS["residential_lane"]["rules"]]
    for r in rules:
        r.pop("active_hours", None)
    return rules


MIXED_SET: tuple[BenchCamera, ...] = (
    BenchCamera("traffic", OFFLINE_CLIP, "busy traffic", DEMO_CAMERAS["intersection"]["rules"]),
    BenchCamera(
        "night_lane", "security_residential_lane_night_1280x720_h264.mp4", "quiet night lane", _lane_rules()
    ),
    BenchCamera(
        "plaza",
        "pedestrians_plaza_overhead_1280x720_h264.mp4",
        "plaza",
        [
            *DEMO_CAMERAS["plaza"]["rules"],
            {
                "name": "plaza_line",
                "type": "line_crossing",
                "start": [0, 400],
                "end": [1280, 400],
                "classes": ["person"],
            },
            {
                "name": "plaza_corner",
                "type": "zone_intrusion",
                "classes": ["person"],
                "polygon": [[800, 450], [1280, 450], [1280, 720], [800, 720]],
            },
        ],
    ),
    BenchCamera(
        "parking",
        "parking_lot_overhead_768x432_h264.mp4",
        "parking lot",
        [
            {
                "name": "parking_line",
                "type": "line_crossing",
                "start": [0, 216],
                "end": [768, 216],
                "classes": VEHICLES,
            },
            {
                "name": "parking_lane",
                "type": "zone_intrusion",
                "classes": VEHICLES,
                "polygon": [[250, 0], [550, 0], [550, 432], [250, 432]],
            },
        ],
    ),
)


def trimmed(video: Path, frames: int, cache: Path | None = None) -> Path:
    """The first ``frames`` frames of ``video`` as a stream copy (same bytes, no re-encode), cached."""
    folder = cache or Path(tempfile.gettempdir()) / "khupho-bench"
    folder.mkdir(parents=True, exist_ok=True)
    st = video.stat()
    out = folder / f"{video.stem}-{frames}f-{st.st_size}{video.suffix}"
    if out.is_file():
        return out
    partial = out.with_name(f".{out.name}.part{video.suffix}")
    with av.open(str(video)) as src, av.open(str(partial), "w") as dst:
        s_in = src.streams.video[0]
        s_out = dst.add_stream_from_template(s_in)
        n = 0
        for packet in src.demux(s_in):
            if packet.dts is None:
                continue
            packet.stream = s_out
            dst.mux(packet)
            n += 1
            if n >= frames:
                break
    partial.replace(out)
    return out
