"""The whole service with traffic analysis on a real RTSP camera: the highway clip gives a segment
level on /public/traffic; the camera's server killed mid-run turns the segment ``unknown`` within the
camera's offline grace, and the cameras that remain keep being analysed. The service's publishers
are wired too: a real Mosquitto gets the segment's retained state and a loopback webhook receiver
the level change, both signed or authenticated."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest

from api.config import parse_config
from api.service import Service
from benchmarks.highway_calibration import HIGHWAY_TRAFFIC
from events.publish.webhooks import SIGNATURE_HEADER, verify
from tests.api.support import login
from tests.api.test_service_rtsp import wait_for
from tests.events.mosquitto import Mosquitto
from tests.events.test_mqtt import PASSWORD, USER, Listener
from tests.events.test_webhooks import SECRET, Receiver
from tests.ingest.conftest import RtspServer, ffmpeg, require_tools

OFFLINE_GRACE_S = 6.0


@pytest.mark.slow
def test_segment_goes_unknown_when_its_camera_goes_offline(
    tmp_path: Path, footage_dir: Path, models_dir: Path
) -> None:
    require_tools()
    clip = tmp_path / "highway.mp4"
    source = footage_dir / "traffic_highway_cctv_320x240_mpeg4.avi"
    encode = ["-c:v", "libx264", "-preset", "veryfast", "-g", "10", "-pix_fmt", "yuv420p", "-an"]
    ffmpeg("-stream_loop", "3", "-i", str(source), *encode, str(clip))
    server = RtspServer({"highway": clip}, log_dir=tmp_path).start()
    broker = Mosquitto(tmp_path / "mosquitto", USER, PASSWORD).start()
    receiver = Receiver()
    listener = Listener(broker.port)
    live = {"analysis_fps": 5, "offline_grace_s": OFFLINE_GRACE_S, "open_timeout_s": 2, "read_timeout_s": 2}
    config = parse_config(
        {
            "detector": {"model": str(models_dir / "yolov8n-coco.onnx"), "imgsz": 320},
            "storage": {
                "database": {"path": str(tmp_path / "events.db")},
                "objects": {"root": str(tmp_path / "media")},
            },
            "api": {"port": 0},
            "traffic": {
                "segments": [
                    {
                        "id": "a1-north",
                        "name": "Cao tốc A1 (hướng Bắc)",
                        "name_en": "A1 northbound",
                        "lanes": ["highway/away"],
                    },
                    {"id": "plaza", "name": "Quảng trường", "lanes": ["parking/lot"]},
                ],
                "stale_after_s": 2.0,
                "congestion": {"hold_s": 0},
            },
            "publish": {
                "mqtt": {"port": broker.port, "username": USER, "password": PASSWORD},
                "webhooks": [{"url": receiver.url, "secret": SECRET, "event_types": ["camera_offline"]}],
            },
            "cameras": {
                "highway": {"source": {"url": server.url("highway"), **live}, "traffic": HIGHWAY_TRAFFIC},
                "parking": {
                    "replay": {
                        "path": str(footage_dir / "parking_lot_overhead_768x432_h264.mp4"),
                        "analysis_fps": 2,
                    },
                    "traffic": {
                        "calibration": {
                            "image": [[0, 0], [768, 0], [768, 432], [0, 432]],
                            "road": [[0, 0], [40, 0], [40, 22], [0, 22]],
                        },
                        "lanes": [
                            {
                                "name": "lot",
                                "polygon": [[0, 0], [768, 0], [768, 432], [0, 432]],
                                "free_flow_kmh": 20,
                            }
                        ],
                    },
                },
            },
        }
    )
    service = Service(config)
    urls: list[str] = []
    runner = threading.Thread(target=service.serve, kwargs={"on_ready": urls.append}, daemon=True)
    runner.start()
    try:
        assert wait_for(lambda: urls, 30)
        client = httpx.Client(base_url=urls[0], timeout=10)  # anonymous: /public/... needs no login
        staff = httpx.Client(base_url=urls[0], timeout=10)
        login(staff, "admin", service.first_admin_password or "")

        def segment(seg_id: str) -> dict:
            return next(s for s in client.get("/public/traffic").json()["segments"] if s["id"] == seg_id)

        seen = wait_for(lambda: segment("a1-north")["speed_kmh"] is not None and segment("a1-north"), 40)
        assert seen, segment("a1-north")
        assert seen["level"] in {"freeFlow", "heavy"} and 60 <= seen["speed_kmh"] <= 170, seen
        assert seen["age_s"] <= 3 and seen["stale"] is False
        assert segment("plaza")["level"] != "unknown"
        # Lane counts reach the traffic table like line crossings.
        assert wait_for(
            lambda: staff.get("/traffic", params={"camera": "highway", "line": "away"}).json()["items"], 20
        )

        parking_before = service.workers["parking"].status().frames_analysed
        server.kill()
        killed = time.monotonic()
        gone = wait_for(lambda: segment("a1-north")["level"] == "unknown", OFFLINE_GRACE_S + 2, step=0.1)
        elapsed = time.monotonic() - killed
        assert gone, segment("a1-north")
        assert elapsed <= OFFLINE_GRACE_S, f"unknown after {elapsed:.1f} s"
        stale = segment("a1-north")
        assert stale["speed_kmh"] is None and stale["stale"] and stale["level_vi"] == "Không có dữ liệu"
        lane = next(la for la in client.get("/public/traffic").json()["lanes"] if la["id"] == "highway/away")
        assert lane["healthy"] is False and lane["speed_kmh"] is None
        # Later the camera is declared offline too; the segment stays unknown, the other camera runs.
        assert wait_for(
            lambda: service.workers["highway"].status().state.value == "offline", OFFLINE_GRACE_S + 5
        )
        assert segment("a1-north")["level"] == "unknown"
        assert segment("plaza")["level"] != "unknown"
        assert service.workers["parking"].status().frames_analysed > parking_before
        print(f"segment unknown {elapsed:.1f} s after the camera's server was killed")

        # MQTT: the segment's state went out (retained) as it changed, unknown last.
        def states() -> list[dict]:
            return [json.loads(p) for p in listener.on("khupho/traffic/a1-north")]

        assert wait_for(lambda: states() and states()[-1]["level"] == "unknown", 5), states()
        assert any(st["level"] != "unknown" for st in states())
        # Webhooks: the level change and the camera_offline event, signed.
        assert wait_for(lambda: len(receiver.requests) >= 2, 10)
        bodies = [json.loads(body) for _, _, body in receiver.requests]
        assert all(verify(SECRET.encode(), h[SIGNATURE_HEADER], b) for _, h, b in receiver.requests)
        assert {"kind": "traffic_level", "id": "a1-north", "level": "unknown"} in [
            {"kind": b["kind"], "id": b["segment"]["id"], "level": b["segment"]["level"]}
            for b in bodies
            if b["kind"] == "traffic_level"
        ]
        assert any(b["kind"] == "event" and b["after"]["type"] == "camera_offline" for b in bodies)
        assert client.get("/metrics").status_code == 401
        metrics = staff.get("/metrics").text
        assert 'khupho_publish_connected{publisher="mqtt"} 1.0' in metrics
        assert 'khupho_publish_messages_total{outcome="delivered",publisher="webhook0"}' in metrics
    finally:
        service.shutdown()
        runner.join(30)
        server.stop()
        listener.close()
        broker.kill()
        receiver.close()
    assert not runner.is_alive()
