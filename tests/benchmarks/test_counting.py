"""The counting benchmark's khupho side on a short stretch of the intersection clip.

Source frames 480-735 (8.5 s), looked at frame by frame: two cars leave up the
north-east arm across the default line (a black car at about frame 515 and a
red one at about 556, both entering from the right edge), then the queue on
that arm is released and two vehicles come down into the intersection across
it (a black car at about 625, a dark SUV at about 700). Nothing else crosses
the line in that stretch.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.counting import (
    CAMERA,
    DEFAULT_CLASSES,
    DEFAULT_LINE,
    IN,
    OUT,
    limited,
    line_rules,
    run_khupho,
    ultralytics_in_direction,
)
from events.geometry import Anchor
from ingest import VideoSource

CLIP = "traffic_intersection_cctv_640x480_h264.mp4"
FIRST, STOP = 480, 735
FPS = 10.0
# At 320 the cars waiting in the queue are too small to be detected until they are
# at the line, so their tracks start too late to see the crossing; 480 sees them.
IMGSZ = 480
# The queue on the north-east arm starts moving after the two cars have left.
RELEASE_FRAME = 600


def test_ultralytics_direction_mapping() -> None:
    # Vertical lines: Ultralytics' IN is moving right. Drawn downwards, moving right goes
    # from the right-hand side of start->end to its left: khupho's "in".
    assert ultralytics_in_direction((100, 0), (100, 200)) == IN
    assert ultralytics_in_direction((100, 200), (100, 0)) == OUT
    # Other lines: IN is moving down. Drawn left to right, moving down is khupho's "out".
    assert ultralytics_in_direction((0, 100), (200, 100)) == OUT
    assert ultralytics_in_direction((200, 100), (0, 100)) == IN
    # The default line is drawn right to left, so both call coming down "in".
    assert ultralytics_in_direction(*DEFAULT_LINE) == IN


@pytest.mark.slow
def test_khupho_counts_both_directions(footage_dir: Path, models_dir: Path) -> None:
    rules = line_rules(*DEFAULT_LINE, DEFAULT_CLASSES, [Anchor.BOTTOM_CENTER], hysteresis_px=10.0)
    source = VideoSource(footage_dir / CLIP, camera=CAMERA, analysis_fps=FPS)
    frames = (f for f in limited(source, STOP) if f.index >= FIRST)
    sides, events = run_khupho(frames, models_dir / "yolov8n-coco.onnx", IMGSZ, FPS, rules, DEFAULT_CLASSES)

    side = sides[rules[0].name]
    assert side.total(OUT) == 2 and side.total(IN) == 2, side.crossings
    # Counts come from the traffic rows; every one of them is one line_crossing event.
    assert side.total(IN) + side.total(OUT) == events[rules[0].name] == len(side.crossings)
    assert set(side.counts) <= set(DEFAULT_CLASSES) and "car" in side.counts
    assert len({c["track_id"] for c in side.crossings}) == 4  # four vehicles, once each
    for crossing in side.crossings:
        if crossing["direction"] == OUT:
            assert crossing["frame"] < RELEASE_FRAME, crossing
        else:
            assert crossing["frame"] > RELEASE_FRAME, crossing
