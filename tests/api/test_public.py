"""The public traffic routes: no login, ETag and caching, the live stream and its bounds, the signage page."""

from __future__ import annotations

import time
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi.testclient import TestClient

from events.congestion import TrafficBoard
from events.lanes import LaneLive, TrafficOutput
from events.traffic_config import TrafficConfig
from tests.api.support import Parts, login
from tests.api.test_sse import Reader, live_server


def make_board(**kw) -> TrafficBoard:  # type: ignore[no-untyped-def]
    config = TrafficConfig.model_validate(
        {
            "segments": [
                {"id": "dbp", "name": "Điện Biên Phủ", "name_en": "Dien Bien Phu", "lanes": ["cam1/up"]},
                {"id": "ntmk", "name": "Nguyễn Thị Minh Khai", "lanes": ["cam2/down"]},
            ],
            "congestion": {"hold_s": 0},
            **kw,
        }
    )
    return TrafficBoard(config, {"cam1": ["up"], "cam2": ["down"]}, ZoneInfo("Asia/Ho_Chi_Minh"))


def report(board: TrafficBoard, camera: str, lane: str, kmh: float | None) -> None:
    live = LaneLive(camera, lane, time.time(), kmh, 50.0, 0.2, 1)
    board.report(camera=camera, output=TrafficOutput([], [], [], [live]))


def test_public_traffic_with_etag_and_cache_control(parts: Parts) -> None:
    board = make_board()
    report(board, "cam1", "up", 40.0)
    board.tick()
    with TestClient(parts.app(traffic_board=board)) as client:
        r = client.get("/public/traffic")  # no credentials of any kind
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
        assert r.headers["cache-control"] == "public, max-age=1" and r.headers["etag"]
        doc = r.json()
        dbp, ntmk = doc["segments"]
        assert dbp["name"] == "Điện Biên Phủ" and dbp["level"] == "freeFlow" and dbp["speed_kmh"] == 40.0
        assert ntmk["level"] == "unknown" and ntmk["stale"] is True  # cam2 never reported
        assert {la["id"] for la in doc["lanes"]} == {"cam1/up", "cam2/down"}
        # Nothing about single vehicles or pictures.
        assert not {"track_ids", "snapshot", "events", "camera_url"} & set(r.text.replace('"', " ").split())
        assert "track" not in r.text and "snapshot" not in r.text
        again = client.get("/public/traffic", headers={"If-None-Match": r.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        report(board, "cam1", "up", 10.0)
        board.tick()
        changed = client.get("/public/traffic", headers={"If-None-Match": r.headers["etag"]})
        assert changed.status_code == 200 and changed.headers["etag"] != r.headers["etag"]
        assert changed.json()["segments"][0]["level"] == "congested"


def test_public_routes_without_a_board_say_so(client: TestClient) -> None:
    r = client.get("/public/traffic")
    assert r.status_code == 404 and "not configured" in r.json()["detail"]


def test_signage_page_renders_segments_levels_and_no_data(parts: Parts) -> None:
    board = make_board()
    report(board, "cam1", "up", 20.0)
    board.tick()
    with TestClient(parts.app(traffic_board=board)) as client:
        for layout in ("landscape", "portrait"):
            r = client.get("/public/signage", params={"layout": layout})
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
            html = r.text
            assert f'<body class="{layout}">' in html
            assert "Điện Biên Phủ" in html and "Nguyễn Thị Minh Khai" in html
            assert "Ùn tắc" in html and "Congested" in html  # 20 of 50 km/h
            assert "Không có dữ liệu" in html and "No data" in html  # ntmk is stale
        one = client.get("/public/signage", params={"segment": "ntmk"}).text
        assert "Nguyễn Thị Minh Khai" in one and "Điện Biên Phủ" not in one
        assert client.get("/public/signage", params={"layout": "sideways"}).status_code == 422
        assert client.get("/public/signage", params={"segment": "nope"}).status_code == 404


def test_public_routes_need_no_login_and_the_others_still_do(parts: Parts) -> None:
    board = make_board()
    report(board, "cam1", "up", 40.0)
    board.tick()
    with TestClient(parts.app(traffic_board=board)) as anonymous:
        assert anonymous.get("/public/traffic").status_code == 200
        assert anonymous.get("/public/signage").status_code == 200
        for path in ("/cameras", "/events", "/traffic", "/events/stream", "/openapi.json", "/metrics"):
            assert anonymous.get(path).status_code == 401, path
    with TestClient(parts.app(traffic_board=board)) as admin:
        login(admin)
        paths = set(admin.get("/openapi.json").json()["paths"])
        assert {p for p in paths if p.startswith("/public")} == {
            "/public/traffic",
            "/public/traffic/stream",
            "/public/signage",
        }


def test_signage_page_allows_only_its_own_inline_code(parts: Parts) -> None:
    board = make_board()
    with TestClient(parts.app(traffic_board=board)) as client:
        r = client.get("/public/signage")
        csp = r.headers["content-security-policy"]
        nonce = csp.split("'nonce-", 1)[1].split("'", 1)[0]
        assert f'<script nonce="{nonce}">' in r.text and f'<style nonce="{nonce}">' in r.text
        assert "unsafe-inline" not in csp and "default-src 'none'" in csp
        assert (
            nonce not in client.get("/public/signage").headers["content-security-policy"]
        )  # fresh each time


def test_stream_sends_changes_heartbeats_and_refuses_beyond_its_bound(parts: Parts) -> None:
    board = make_board(stream_heartbeat_s=0.5, max_stream_clients=2)
    report(board, "cam1", "up", 40.0)
    board.tick()
    with live_server(parts, traffic_board=board) as base, httpx.Client(base_url=base, timeout=5) as http:
        first = Reader(http, "/public/traffic/stream")
        second = Reader(http, "/public/traffic/stream")
        try:
            assert first.response.headers["content-type"].startswith("text/event-stream")
            msg = first.next()
            assert msg.event == "traffic" and msg.data["segments"][0]["level"] == "freeFlow"
            third = http.get("/public/traffic/stream")
            assert third.status_code == 503 and third.headers["retry-after"] == "10"
            report(board, "cam1", "up", 2.0)
            board.tick()
            levels = [first.next(timeout=3).data["segments"][0]["level"] for _ in range(2)]
            assert "stationary" in levels
            t0 = time.perf_counter()
            beat = first.next(timeout=3)  # nothing changes now: a heartbeat with the current state
            assert beat.event == "traffic" and time.perf_counter() - t0 < 1.5
            assert second.next().event == "traffic"
        finally:
            first.close()
            second.close()
        deadline = time.monotonic() + 5
        while board.feed.subscribers and time.monotonic() < deadline:
            time.sleep(0.05)
        assert board.feed.subscribers == 0  # clients that left free their slots
        board.stop()


@pytest.mark.parametrize("stale", [True])
def test_stale_board_document_reports_age(parts: Parts, stale: bool) -> None:
    board = make_board(stale_after_s=0.3)
    report(board, "cam1", "up", 40.0)
    assert board.tick().segments()[0]["level"] == "freeFlow"
    time.sleep(0.5)
    seg = board.tick().segments()[0]
    assert seg["level"] == "unknown" and seg["stale"] is stale and seg["speed_kmh"] is None
    assert seg["measured_at"] is not None and seg["age_s"] is not None
