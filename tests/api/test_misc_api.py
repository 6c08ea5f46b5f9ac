"""Cameras, traffic, health and metrics routes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from events.model import TrafficCount
from tests.api.support import Parts, login, make_event, start


def test_cameras(client: TestClient) -> None:
    cams = client.get("/cameras").json()
    assert [c["id"] for c in cams] == ["cam1", "cam2"]
    assert cams[0] == {
        "id": "cam1",
        "name": "Front gate",
        "state": "online",
        "last_frame_time": "2024-05-01T12:00:00Z",
        "source_fps": 25.0,
        "analysed_fps": 5.0,
        "reconnects": 1,
        "last_error": None,
        "dropped_frames": None,
        "width": None,
        "height": None,
        "khu_pho": "Khu phố 1",
        "ward": "Phường Bến Nghé",
        "node": None,  # cluster mode only
    }
    cam2 = client.get("/cameras/cam2").json()
    assert (
        cam2["name"] == "cam2" and cam2["state"] == "offline" and cam2["last_error"] == "connection refused"
    )
    r = client.get("/cameras/nope")
    assert r.status_code == 404 and "nope" in r.json()["detail"]


def test_cameras_from_objects(parts: Parts) -> None:
    class Status:  # a provider may hand out its own objects
        def __init__(self) -> None:
            self.id, self.name, self.state = "cam9", "Yard", "connecting"
            self.last_frame_time = None
            self.source_fps = self.analysed_fps = None
            self.reconnects, self.last_error = 0, None

    from api.app import create_app

    app = create_app(
        parts.store, parts.objects, parts.bus, lambda: [Status()], parts.metrics, security=parts.security
    )
    with TestClient(app) as c:
        login(c)
        assert c.get("/cameras/cam9").json()["name"] == "Yard"


def test_traffic(client: TestClient, parts: Parts) -> None:
    m = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    parts.store.add_traffic(
        [
            TrafficCount(camera="cam1", line="gate", class_name="car", direction="in", minute=m, count=3),
            TrafficCount(
                camera="cam1",
                line="gate",
                class_name="car",
                direction="in",
                minute=m + timedelta(minutes=5),
                count=2,
            ),
            TrafficCount(camera="cam1", line="road", class_name="person", direction="out", minute=m, count=1),
            TrafficCount(camera="cam2", line="gate", class_name="car", direction="in", minute=m, count=9),
        ]
    )
    body = client.get("/traffic", params={"camera": "cam1", "line": "gate"}).json()
    assert body["bucket"] == "hour" and body["tz"] == "UTC"
    assert body["items"] == [
        {
            "time": "2024-05-01T10:00:00Z",
            "camera": "cam1",
            "line": "gate",
            "class_name": "car",
            "direction": "in",
            "count": 5,
        }
    ]
    minutes = client.get("/traffic", params={"camera": "cam1", "line": "gate", "bucket": "minute"}).json()[
        "items"
    ]
    assert [(r["time"], r["count"]) for r in minutes] == [
        ("2024-05-01T10:00:00Z", 3),
        ("2024-05-01T10:05:00Z", 2),
    ]
    local = client.get(
        "/traffic", params={"camera": "cam1", "bucket": "day", "tz": "Africa/Johannesburg"}
    ).json()
    assert {r["time"] for r in local["items"]} == {"2024-05-01T00:00:00+02:00"}
    window = {"since": "2024-05-01T10:01:00Z", "until": "2024-05-01T11:00:00Z", "bucket": "minute"}
    assert [r["count"] for r in client.get("/traffic", params=window).json()["items"]] == [2]
    assert len(client.get("/traffic").json()["items"]) == 3  # every camera and line
    for params, field in [
        ({"bucket": "week"}, "bucket"),
        ({"tz": "Mars/Olympus"}, "tz"),
        ({"since": "x"}, "since"),
    ]:
        r = client.get("/traffic", params=params)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", field]


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "detail": None}


def test_storage_failure_is_503_not_500(parts: Parts) -> None:
    parts.store.apply(start(make_event(1)))
    with TestClient(parts.app(), raise_server_exceptions=False) as c:
        login(c)
        parts.store.close()  # the database goes away under the API
        r = c.get("/healthz")
        assert r.status_code == 503 and r.json() == {"status": "error", "detail": "event store unavailable"}
        r = c.get("/events")
        # 503 (retry), and the body names no file or server: those go to the log.
        assert r.status_code == 503 and r.json() == {"detail": "storage unavailable, try again"}


def test_metrics(client: TestClient, parts: Parts) -> None:
    m = parts.metrics
    m.frame_decoded(camera="cam1")
    m.frame_decoded(camera="cam1")
    m.frame_analysed(camera="cam1")
    m.frame_dropped(camera="cam1", reason="rate_limit")
    m.set_camera_fps(camera="cam1", decoded=25.0, analysed=5.0, source=25.0)
    m.set_camera_up(camera="cam1", up=True)
    m.camera_reconnected(camera="cam1")
    m.observe_inference(batch_size=4, seconds=0.042)
    m.set_queue_depth(queue="detector", n=3)
    m.set_detector(model="yolov8n-coco.onnx", runtime="onnxruntime", precision="fp32")
    m.set_detector(model="yolov8n-coco.onnx", runtime="openvino", precision="bf16")  # replaces
    m.event_transition(transition=start(make_event(1)))
    m.observe_event_latency(seconds=0.3)
    parts.bus.publish(start(make_event(2)))
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    for line in [
        'khupho_frames_decoded_total{camera="cam1"} 2.0',
        'khupho_frames_analysed_total{camera="cam1"} 1.0',
        'khupho_frames_dropped_total{camera="cam1",reason="rate_limit"} 1.0',
        'khupho_camera_decoded_fps{camera="cam1"} 25.0',
        'khupho_camera_analysed_fps{camera="cam1"} 5.0',
        'khupho_camera_up{camera="cam1"} 1.0',
        'khupho_camera_reconnects_total{camera="cam1"} 1.0',
        'khupho_inference_seconds_bucket{le="0.05"} 1.0',
        'khupho_inference_batch_size_bucket{le="4.0"} 1.0',
        'khupho_queue_depth{queue="detector"} 3.0',
        'khupho_event_transitions_total{camera="cam1",phase="start",type="zone_intrusion"} 1.0',
        "khupho_frame_to_event_seconds_count 1.0",
        "khupho_bus_published_total 1.0",
        "khupho_bus_subscribers 0.0",
        'khupho_detector_info{model="yolov8n-coco.onnx",precision="bf16",runtime="openvino"} 1.0',
    ]:
        assert line in text, line
    assert 'runtime="onnxruntime"' not in text


def test_metrics_registries_are_independent(parts: Parts) -> None:
    from api.metrics import KhuphoMetrics

    a, b = KhuphoMetrics(), KhuphoMetrics()  # no global registry: two apps (or tests) never collide
    a.frame_decoded(camera="x")
    assert b'frames_decoded_total{camera="x"}' in a.render()
    assert b'camera="x"' not in b.render()


def test_snapshot_writer_metrics(parts: Parts, tmp_path: Path) -> None:
    from events.storage.snapshot import SnapshotWriter
    from events.storage.spool import UploadSpool, link_to_store

    spool = UploadSpool(
        parts.objects,
        tmp_path / "spool",
        on_uploaded=link_to_store(parts.store),
        max_bytes=1 << 20,
        retry_initial_s=1.0,
        retry_max_s=1.0,
    )
    writer = SnapshotWriter(spool)
    parts.metrics.watch_snapshots(writer)
    text = parts.metrics.render().decode()
    assert 'khupho_snapshots_total{outcome="dropped"} 0.0' in text
    assert "khupho_snapshots_pending 0.0" in text


def test_traffic_default_zone_comes_from_the_server(parts: Parts) -> None:
    parts.store.add_traffic(
        [
            TrafficCount(
                camera="cam1",
                line="gate",
                class_name="car",
                direction="in",
                minute=datetime(2024, 5, 1, 20, 0, tzinfo=UTC),
                count=1,
            )
        ]
    )
    with TestClient(parts.app(traffic_tz="Asia/Ho_Chi_Minh")) as c:
        login(c)
        body = c.get("/traffic", params={"bucket": "day"}).json()
    assert body["tz"] == "Asia/Ho_Chi_Minh"
    assert body["items"][0]["time"] == "2024-05-02T00:00:00+07:00"  # 20:00 UTC is the next local day
