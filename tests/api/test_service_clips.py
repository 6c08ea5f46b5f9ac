"""Event clips through the real service: a replayed camera, a zone rule, the clip stored, linked, served."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import pytest

from api.config import parse_config
from api.service import Service
from events.model import Event, EventType
from tests.api.support import login

PLAZA = "pedestrians_plaza_overhead_1280x720_h264.mp4"
PRE_ROLL_S, POST_ROLL_S, MAX_LENGTH_S = 2.0, 2.0, 8.0


@pytest.fixture
def clip_service(tmp_path: Path, footage_dir: Path, models_dir: Path) -> Iterator[tuple[Service, str]]:
    config = parse_config(
        {
            "detector": {"model": str(models_dir / "yolov8n-coco.onnx"), "imgsz": 320},
            "storage": {
                "database": {"path": str(tmp_path / "events.db")},
                "objects": {"type": "local", "root": str(tmp_path / "media")},
            },
            "api": {"port": 0},
            "cameras": {
                "plaza": {
                    "replay": {"path": str(footage_dir / PLAZA), "analysis_fps": 3, "speed": 1},
                    "events": {
                        "rules": [
                            {
                                "name": "plaza_corner",
                                "type": "zone_intrusion",
                                "classes": ["person"],
                                "end_after_s": 1.0,
                                "polygon": [[800, 450], [1280, 450], [1280, 720], [800, 720]],
                            },
                            {
                                "name": "plaza_line",
                                "type": "line_crossing",
                                "classes": ["person"],
                                "start": [0, 400],
                                "end": [1280, 400],
                            },
                        ]
                    },
                    "clips": {
                        "pre_roll_s": PRE_ROLL_S,
                        "post_roll_s": POST_ROLL_S,
                        "max_length_s": MAX_LENGTH_S,
                    },
                },
            },
        }
    )
    service = Service(config)
    urls: list[str] = []
    thread = threading.Thread(target=service.serve, kwargs={"on_ready": urls.append}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not urls and time.monotonic() < deadline:
        time.sleep(0.05)
    assert urls, "API did not come up"
    try:
        yield service, urls[0]
    finally:
        service.shutdown()
        thread.join(30)
        assert not thread.is_alive()


def _events(service: Service) -> list[Event]:
    events, _ = service.store.list_events(limit=500)
    return events


@pytest.mark.slow
def test_an_intrusion_gets_a_playable_clip_served_whole_and_by_range(
    clip_service: tuple[Service, str], tmp_path: Path
) -> None:
    service, url = clip_service
    deadline = time.monotonic() + 60
    clipped: list[Event] = []
    while not clipped and time.monotonic() < deadline:
        time.sleep(0.5)
        clipped = [e for e in _events(service) if e.clip]
    assert clipped, (service.clips.stats() if service.clips else None, _events(service))
    event = clipped[0]
    assert event.type is EventType.ZONE_INTRUSION
    assert event.clip == f"clips/plaza/{event.start_time:%Y/%m/%d}/{event.id}.mp4"

    why = {"reason": "reviewing the intrusion"}
    with httpx.Client(base_url=url, timeout=10, params=why) as client:
        login(client, "admin", service.first_admin_password)
        whole = client.get(f"/events/{event.id}/clip")
        assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
        assert whole.headers["accept-ranges"] == "bytes"
        data = whole.content
        assert data == service.objects.get(event.clip)

        part = client.get(f"/events/{event.id}/clip", headers={"Range": "bytes=100-4195"})
        assert part.status_code == 206 and part.content == data[100:4196]
        assert part.headers["content-range"] == f"bytes 100-4195/{len(data)}"
        bad = client.get(f"/events/{event.id}/clip", headers={"Range": f"bytes={len(data)}-"})
        assert bad.status_code == 416 and bad.headers["content-range"] == f"bytes */{len(data)}"

        metrics = client.get("/metrics").text
        assert 'khupho_clips_total{outcome="written"}' in metrics
        written = float(metrics.split('khupho_clips_total{outcome="written"} ')[1].split()[0])
        held = float(metrics.split('khupho_clip_buffer_bytes{camera="plaza"} ')[1].split()[0])
        assert written >= 1 and held > 0

        # Line crossings are not security events: no clip.
        crossings = [e for e in _events(service) if e.type is EventType.LINE_CROSSING]
        assert crossings, "the plaza line saw nobody cross"
        assert client.get(f"/events/{crossings[0].id}/clip").status_code == 404

    # Playable: every frame decodes, the first is a keyframe, and it covers the event's pre-roll
    # (to its keyframe) up to the end plus post-roll, or the maximum length.
    path = tmp_path / "clip.mp4"
    path.write_bytes(data)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        duration = float(stream.duration * stream.time_base)
    assert frames and frames[0].key_frame
    assert len(frames) == pytest.approx(duration * 25, abs=2)
    stored = service.store.get(event.id)
    assert stored is not None
    wanted_end = (
        stored.end_pts + POST_ROLL_S
        if stored.end_pts is not None
        and stored.end_pts + POST_ROLL_S < stored.start_pts - PRE_ROLL_S + MAX_LENGTH_S
        else stored.start_pts - PRE_ROLL_S + MAX_LENGTH_S
    )
    # The clip starts at a keyframe at or before the pre-roll (the file's are at 0 and 5.88 s of
    # each 13.6 s loop; nothing exists before 0), so it is at least as long as asked and at most
    # one group longer.
    asked = wanted_end - max(0.0, stored.start_pts - PRE_ROLL_S)
    assert asked <= duration + 2 / 25
    assert duration <= asked + 5.88 + 2 / 25
