"""The signage page in headless Chromium at 1920x1080 and 1080x1920: names, levels, live updates, stale state.

Screenshots are kept as test artefacts in ``$KHUPHO_TEST_ARTIFACTS`` (default ``out/test-artifacts``)
under ``signage/``. Chromium is Debian's (``scripts/bootstrap test`` installs it); Playwright drives
it through ``executable_path`` (``playwright install`` is never needed).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from events.congestion import TrafficBoard
from events.lanes import LaneLive, TrafficOutput
from events.traffic_config import TrafficConfig
from tests.api.support import Parts
from tests.api.test_sse import live_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--no-first-run"]  # fmt: skip
LAYOUTS = {"landscape": (1920, 1080), "portrait": (1080, 1920)}


def artefacts() -> Path:
    root = Path(
        os.environ.get(
            "KHUPHO_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "out" / "test-artifacts"
        )
    )
    path = root / "signage"
    path.mkdir(parents=True, exist_ok=True)
    return path


def make_board() -> TrafficBoard:
    config = TrafficConfig.model_validate(
        {
            "segments": [
                {"id": "dbp", "name": "Điện Biên Phủ", "name_en": "Dien Bien Phu", "lanes": ["cam1/a"]},
                {
                    "id": "ntmk",
                    "name": "Nguyễn Thị Minh Khai",
                    "name_en": "Nguyen Thi Minh Khai",
                    "lanes": ["cam1/b"],
                },
                {"id": "vvk", "name": "Võ Văn Kiệt", "name_en": "Vo Van Kiet", "lanes": ["cam2/a"]},
                {
                    "id": "cmt8",
                    "name": "Cách Mạng Tháng Tám",
                    "name_en": "Cach Mang Thang Tam",
                    "lanes": ["cam1/c"],
                },
            ],
            "congestion": {"hold_s": 0},
            "stream_heartbeat_s": 0.5,
            "stale_after_s": 60,
        }
    )
    return TrafficBoard(config, {"cam1": ["a", "b", "c"], "cam2": ["a"]}, ZoneInfo("Asia/Ho_Chi_Minh"))


def report(board: TrafficBoard, **lanes: float | None) -> None:
    live = [LaneLive("cam1", lane, time.time(), kmh, 50.0, 0.2, 1) for lane, kmh in lanes.items()]
    board.report(camera="cam1", output=TrafficOutput([], [], [], live))
    board.tick()


@pytest.mark.slow
def test_signage_in_chromium_at_both_layouts(parts: Parts) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed (scripts/bootstrap test installs it)")
    from playwright.sync_api import sync_playwright

    board = make_board()
    report(board, a=45.0, b=15.0, c=3.0)  # freeFlow, congested, stationary; cam2 (vvk) never reports
    out = artefacts()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            with live_server(parts, traffic_board=board) as base:
                for layout, (width, height) in LAYOUTS.items():
                    page = browser.new_page(viewport={"width": width, "height": height})
                    page.goto(f"{base}/public/signage?layout={layout}")
                    check_page(page, layout, width)
                    page.screenshot(path=str(out / f"signage_{layout}.png"))
                    page.close()

                # Live: a level change reaches an open page through the stream, without a reload.
                page = browser.new_page(viewport={"width": 1920, "height": 1080})
                page.goto(f"{base}/public/signage")
                report(board, a=2.0, b=15.0, c=3.0)
                page.wait_for_selector("#seg-dbp.stationary")
                assert page.inner_text("#seg-dbp .kmh") == "2"
                page.screenshot(path=str(out / "signage_live_update.png"))
            # The server is gone: after three heartbeats without a message every card says "no data".
            page.wait_for_selector("#link.lost", timeout=10_000)
            for seg in ("dbp", "ntmk", "vvk", "cmt8"):
                assert page.get_attribute(f"#seg-{seg}", "class") == "seg unknown"
                assert "Không có dữ liệu" in page.inner_text(f"#seg-{seg}")
            assert "Mất kết nối" in page.inner_text("#link")
            page.screenshot(path=str(out / "signage_connection_lost.png"))
        finally:
            browser.close()
            board.stop()


def check_page(page, layout: str, width: int) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_selector("#clock:not(:empty)")  # the page's own script ran (CSP nonce)
    text = page.inner_text("body")
    for name in ("Điện Biên Phủ", "Nguyễn Thị Minh Khai", "Võ Văn Kiệt", "Cách Mạng Tháng Tám"):
        assert name in text
    for words in ("Thông thoáng", "Free flow", "Ùn tắc", "Congested", "Kẹt cứng", "Stationary"):
        assert words in text, words
    assert page.get_attribute("#seg-vvk", "class") == "seg unknown"  # its camera never reported
    stale = page.inner_text("#seg-vvk")
    assert "Không có dữ liệu" in stale and "No data" in stale
    assert page.inner_text("#seg-dbp .kmh") == "45"
    boxes = [page.locator(f"#seg-{s}").bounding_box() for s in ("dbp", "ntmk")]
    if layout == "landscape":
        assert boxes[1]["x"] > boxes[0]["x"] + width / 3  # two columns
    else:
        assert boxes[1]["x"] == boxes[0]["x"] and boxes[1]["y"] > boxes[0]["y"]  # one column
    fits = page.evaluate("document.documentElement.scrollHeight <= window.innerHeight + 1")
    assert fits, "the page must fit the screen without scrolling"
