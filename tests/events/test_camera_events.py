"""CameraEventProcessor end to end on synthetic detections: real ByteTrack, real rules."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import supervision as sv

from events import CameraEventProcessor, CameraEventsConfig
from events.model import Phase
from ingest.frame import Frame

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
WALL0 = datetime(2024, 6, 1, 21, 59, 57, tzinfo=TZ).timestamp()  # 3 s before a minute ends
IMAGE = np.zeros((480, 640, 3), dtype=np.uint8)
FPS = 5.0

CONFIG = CameraEventsConfig.model_validate(
    {
        "rules": [
            {
                "name": "street",
                "type": "line_crossing",
                "start": [0, 300],
                "end": [640, 300],
                "classes": ["person", "car"],
                "snapshots": True,  # off by default; this test follows the pictures too
            },
            {
                "name": "garden",
                "type": "zone_intrusion",
                "polygon": [[100, 50], [300, 50], [300, 250], [100, 250]],
                "classes": ["person"],
            },
        ]
    }
)


def _detections(i: int) -> sv.Detections:
    """A person walking up the picture at x = 200 and a car driving down at x = 450."""
    person_y = 460 - 20 * i  # bottom of the box
    car_y = 140 + 20 * i
    xyxy = np.array([[180, person_y - 80, 220, person_y], [410, car_y - 60, 490, car_y]], dtype=np.float32)
    return sv.Detections(
        xyxy=xyxy,
        confidence=np.array([0.6 + 0.01 * i, 0.9], dtype=np.float32),
        class_id=np.array([0, 2]),
        data={"class_name": np.array(["person", "car"])},
    )


def _frame(i: int, pts: float | None = None, camera: str = "cam1") -> Frame:
    t = i / FPS if pts is None else pts
    return Frame(camera=camera, index=i, pts=t, wall_time=WALL0 + t, image=IMAGE)


def test_line_and_zone_events_with_traffic_counts() -> None:
    proc = CameraEventProcessor("cam1", CONFIG, FPS, "Asia/Ho_Chi_Minh")
    results = [proc.process(_frame(i), _detections(i)) for i in range(20)]

    for r in results:
        assert r.tracked_detections.tracker_id is not None and (r.tracked_detections.tracker_id >= 0).all()
    ids = {tuple(r.tracked_detections.tracker_id.tolist()) for r in results[1:]}
    assert ids == {(0, 1)}  # two stable tracks from the second frame on

    transitions = [t for r in results for t in r.transitions]
    street = [t for t in transitions if t.event.rule == "street"]
    # Both anchors pass y = 300 at frame 8 and leave the 10 px band at frame 9.
    assert [(t.phase, t.event.classes, t.event.track_ids, t.event.data["direction"]) for t in street] == [
        (Phase.START, ["person"], [0], "in"),
        (Phase.END, ["person"], [0], "in"),
        (Phase.START, ["car"], [1], "out"),
        (Phase.END, ["car"], [1], "out"),
    ]
    assert all(t.event.start_pts == pytest.approx(9 / FPS) for t in street)
    crossings = [t.event for t in street]
    garden = [t for t in transitions if t.event.rule == "garden"]
    assert [t.phase for t in garden][:1] == [Phase.START] and garden[0].event.track_ids == [0]

    # Every crossing became a snapshot candidate holding the frame's image.
    snaps = [s for r in results for s in r.snapshots]
    crossing_ids = {e.id for e in crossings}
    assert crossing_ids <= {s.event_id for s in snaps}
    assert all(s.image is IMAGE for s in snaps)

    # Counts come out with the frame that completed the crossings (storage adds increments up), so
    # the current minute is visible at once instead of when it closes.
    flushed = [(i, c) for i, r in enumerate(results) for c in r.traffic_counts]
    assert flushed, "the crossings should have been counted"
    assert {i for i, _ in flushed} == {9}
    assert [(c.line, c.class_name, c.direction, c.count) for _, c in flushed] == [
        ("street", "car", "out", 1),
        ("street", "person", "in", 1),
    ]
    assert all(c.minute == datetime(2024, 6, 1, 21, 59, tzinfo=TZ) for _, c in flushed)

    closing = proc.close(WALL0 + 10)
    # The person is still in the garden (feet at y = 80) when the camera closes.
    assert {t.phase for t in garden[1:]} == {Phase.UPDATE}  # better snapshots as confidence rises
    (end,) = closing.transitions
    assert end.phase is Phase.END and end.event.id == garden[0].event.id
    assert end.event.end_pts == pytest.approx(19 / FPS)
    ends = [end]
    for t in ends:
        assert t.event.data["end_reason"] == "closed" and t.event.data["closed_time"].startswith(
            "2024-06-01T22:00:07"
        )
    assert closing.traffic_counts == []  # nothing crossed after 22:00
    assert proc.open_event_ids == []


def test_stream_restart_ends_events_and_keeps_ids_unique() -> None:
    proc = CameraEventProcessor("cam1", CONFIG, FPS)
    for i in range(14):
        proc.process(_frame(i), _detections(i))
    assert proc.open_event_ids
    open_ids = set(proc.open_event_ids)
    r = proc.process(_frame(14, pts=0.0), _detections(14))
    ends = [t.event for t in r.transitions if t.phase is Phase.END]
    assert {e.id for e in ends} == open_ids and all(e.data["end_reason"] == "stream_restart" for e in ends)
    r = proc.process(_frame(15, pts=0.2), _detections(15))
    assert r.tracked_detections.tracker_id.tolist() == [2, 3]  # new tracks, new ids


def test_rule_list_empty_frames_and_camera_check() -> None:
    proc = CameraEventProcessor("cam1", list(CONFIG.rules), FPS, TZ)
    r = proc.process(_frame(0), sv.Detections.empty())
    assert r.transitions == [] and len(r.tracked_detections) == 0
    with pytest.raises(ValueError, match="cam2"):
        proc.process(_frame(1, camera="cam2"), sv.Detections.empty())
    assert proc.close().transitions == []
