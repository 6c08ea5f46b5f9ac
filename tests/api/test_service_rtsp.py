"""The service against a real RTSP server: a camera dies and returns, another has wrong credentials,
and the rest keep being analysed; camera_offline / camera_online go through the event API."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from api.config import parse_config
from api.service import Service
from tests.api.support import login
from tests.ingest.conftest import RtspServer, ffmpeg, require_tools

PASSWORD = "s3cr3t-pw"


def wait_for(check: Callable[[], object], timeout: float, step: float = 0.2) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step)
    return None


@pytest.fixture
def servers(tmp_path: Path, footage_dir: Path) -> Iterator[tuple[RtspServer, RtspServer]]:
    require_tools()
    steady_clip = tmp_path / "intersection_loop.mp4"
    ffmpeg(
        "-stream_loop",
        "2",
        "-i",
        str(footage_dir / "traffic_intersection_cctv_640x480_h264.mp4"),
        "-c",
        "copy",
        str(steady_clip),
    )
    steady = RtspServer({"gate": steady_clip}, auth={"gate": ("viewer", PASSWORD)}, log_dir=tmp_path)
    flappy = RtspServer(
        {"lane": footage_dir / "security_residential_lane_night_1280x720_h264.mp4"}, log_dir=tmp_path
    )
    try:
        yield steady.start(), flappy.start()
    finally:
        steady.stop()
        flappy.stop()


@pytest.mark.slow
def test_camera_outage_is_an_event_and_others_keep_running(servers, tmp_path: Path, models_dir: Path) -> None:  # type: ignore[no-untyped-def]
    steady, flappy = servers
    live = {
        "analysis_fps": 2,
        "offline_grace_s": 2,
        "open_timeout_s": 2,
        "read_timeout_s": 2,
        "backoff": {"initial_s": 0.2, "max_s": 1.0},
    }
    config = parse_config(
        {
            "detector": {"model": str(models_dir / "yolov8n-coco.onnx"), "imgsz": 320},
            "storage": {
                "database": {"path": str(tmp_path / "events.db")},
                "objects": {"root": str(tmp_path / "media")},
            },
            "api": {"port": 0},
            "cameras": {
                "gate": {"source": {"url": steady.url("gate", "viewer", PASSWORD), **live}},
                "lane": {"source": {"url": flappy.url("lane"), **live}},
                "intruder": {"source": {"url": steady.url("gate", "viewer", "wrong-" + PASSWORD), **live}},
            },
        }
    )
    service = Service(config)
    urls: list[str] = []
    runner = threading.Thread(target=service.serve, kwargs={"on_ready": urls.append}, daemon=True)
    runner.start()
    try:
        assert wait_for(lambda: urls, 30)
        client = httpx.Client(base_url=urls[0], timeout=10)
        login(client, "admin", service.first_admin_password)

        def cams() -> dict[str, dict]:
            return {c["id"]: c for c in client.get("/cameras").json()}

        assert wait_for(
            lambda: cams()["gate"]["state"] == "online" and cams()["lane"]["state"] == "online", 20
        )
        bad = wait_for(lambda: cams()["intruder"]["last_error"], 15)
        assert "401 Unauthorized" in str(bad) and PASSWORD[-6:] not in str(bad), bad
        assert cams()["intruder"]["state"] != "online"
        # A camera that cannot get in is offline like one that is down, with the reason in the event.
        refused = wait_for(
            lambda: client.get("/events", params={"type": "camera_offline", "camera": "intruder"}).json()[
                "items"
            ],
            10,
        )
        assert refused and "authentication failed" in refused[0]["data"]["error"]

        gate_before = service.workers["gate"].status().frames_analysed
        flappy.kill()
        killed = time.monotonic()
        offline = wait_for(
            lambda: client.get("/events", params={"type": "camera_offline", "camera": "lane"}).json()[
                "items"
            ],
            10,
        )
        assert offline, "no camera_offline event"
        assert len(offline) == 1 and offline[0]["active"]
        assert time.monotonic() - killed < 2 + 5  # grace period plus detection of the loss
        assert cams()["lane"]["state"] == "offline"
        assert cams()["gate"]["state"] == "online"

        flappy.start()  # same port
        back = time.monotonic()
        assert wait_for(lambda: cams()["lane"]["state"] == "online", 5), "not online within 5 s of the return"
        online_after = time.monotonic() - back
        lane_frames = service.workers["lane"].status().frames_analysed
        assert wait_for(lambda: service.workers["lane"].status().frames_analysed > lane_frames + 2, 10)
        ended = client.get(f"/events/{offline[0]['id']}").json()
        assert not ended["active"] and ended["end_time"]
        assert client.get("/events", params={"type": "camera_online", "camera": "lane"}).json()["items"]
        assert service.workers["gate"].status().frames_analysed > gate_before + 5  # never stopped

        # The password appears nowhere a person or a scraper can read.
        for path in ("/cameras", "/events?limit=500", "/metrics"):
            assert PASSWORD not in client.get(path).text, path
        print(f"camera back online {online_after:.2f} s after the server returned")
    finally:
        service.shutdown()
        runner.join(30)
    assert not runner.is_alive()
