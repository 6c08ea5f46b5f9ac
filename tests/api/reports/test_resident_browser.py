"""The resident's flow and the staff's answer in a real headless Chromium (Debian's, driven by
Playwright) at a phone-sized viewport, against a real server on 127.0.0.1: a resident files a report
with a photo and gets a code; an operator assigns it, links camera evidence and resolves it with a
public note; the resident's page shows the timeline; the resident reopens it. Screenshots go to
out/screenshots/ and are checked to render."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from api.auth import Role
from events.model import EventType
from tests.api.reports.support import jpeg_with_gps, make_desk
from tests.api.support import PASSWORD, Parts, make_event, start, wait_in_page
from tests.api.test_sse import live_server

pytestmark = pytest.mark.slow
playwright_api = pytest.importorskip("playwright.sync_api")

from tests.api.console.test_console_browser import ARGS, CHROMIUM, PHONE, SHOTS, check_rendered  # noqa: E402


def _shot(page: object, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    check_rendered(path)
    return path


def test_resident_files_operator_resolves_resident_follows_and_reopens(
    parts: Parts, models_dir: Path, shared_dir: Path, tmp_path: Path
) -> None:
    desk = make_desk(parts, models_dir)
    parts.security.auth.add_user("op1", PASSWORD, Role.OPERATOR, ["kp1"])
    # A camera event of kp1 from an hour ago: what the operator links as evidence.
    when = datetime.now(UTC) - timedelta(hours=1)
    parts.store.apply(start(make_event(9, camera="cam1", type=EventType.LOITERING, start_time=when)))
    photo = tmp_path / "hem-12.jpg"
    photo.write_bytes(jpeg_with_gps(source=shared_dir / "images" / "zidane.jpg"))  # two faces, GPS added
    errors: list[str] = []
    with live_server(parts, reports=desk) as url, playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            # 1. The resident, on a phone, in Vietnamese (the default).
            resident = browser.new_context(
                viewport=PHONE,
                locale="vi-VN",
                is_mobile=True,
                has_touch=True,
                permissions=["geolocation"],
                geolocation={"latitude": 10.7769, "longitude": 106.7009},
            )
            page = resident.new_page()
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{url}/phan-anh")
            assert page.locator("html").get_attribute("lang") == "vi"
            page.select_option("select[name=service_code]", "security")
            page.fill(
                "textarea[name=description]", "Hai thanh niên lạ mặt cạy khóa xe máy trước nhà số 12, hẻm 45"
            )
            page.select_option("select[name=khu_pho]", "kp1")
            page.fill("input[name=address_string]", "12 hẻm 45 Lê Lợi")
            page.click("#locate")  # the phone's position (granted to this context)
            wait_in_page(page, "document.querySelector('input[name=lat]').value !== ''")
            page.set_input_files("input[name=media]", str(photo))
            _shot(page, "resident-new-phone")
            page.click("#send")
            page.wait_for_selector("#code")
            code = page.inner_text("#code").strip()
            assert re.fullmatch(r"[0-9A-Z]{4}(-[0-9A-Z]{4}){4}", code), code
            report_id = int(page.inner_text("#report-id").lstrip("#"))
            _shot(page, "resident-filed-phone")
            report = desk.store.get(report_id)
            assert report is not None and report.khu_pho == "kp1" and report.media_key
            assert (report.lat, report.lon) == (10.7769, 106.7009)

            # 2. The operator of kp1, on a phone too: assign, link the camera event, resolve.
            staff = browser.new_context(viewport=PHONE, locale="vi-VN")
            op = staff.new_page()
            op.on("console", lambda m: m.type == "error" and errors.append(m.text))
            op.goto(f"{url}/console/reports")
            op.fill("input[name=username]", "op1")
            op.fill("input[name=password]", PASSWORD)
            op.click("#login-form button[type=submit]")
            op.wait_for_url(f"{url}/console/reports")
            op.wait_for_selector(f"li.report[data-report='{report_id}']")
            _shot(op, "reports-queue-phone")
            op.click(f"li.report[data-report='{report_id}'] a")
            op.wait_for_selector("#assign")
            wait_in_page(
                op, "document.querySelector('#photo') && document.querySelector('#photo').naturalWidth > 0"
            )
            op.select_option("form[action$='/assign'] select[name=username]", "op1")
            op.click("#assign")
            op.wait_for_selector("#assignee")
            op.click("button.link-event[data-event='ev009']")
            op.wait_for_selector("#evidence figure[data-event='ev009']")
            assert parts.store.get("ev009").locked
            op.fill(
                "#resolve-form textarea[name=public_note]",
                "Công an phường đã tuần tra, tạm giữ hai đối tượng.",
            )
            op.fill("#resolve-form textarea[name=internal_note]", "Đối tượng Tâm, đã có tiền án")
            op.click("#resolve")
            op.wait_for_selector("#state[data-state='resolved']")
            _shot(op, "report-staff-phone")

            # 3. The resident follows the report by code: the public timeline, no staff details.
            page.goto(f"{url}/phan-anh/theo-doi?ma={code.lower()}")
            page.wait_for_selector("#timeline")
            wait_in_page(
                page, "document.querySelector('#photo') && document.querySelector('#photo').naturalWidth > 0"
            )
            kinds = [li.get_attribute("data-kind") for li in page.locator("#timeline li").all()]
            assert kinds == ["received", "routed", "resolved"], kinds
            timeline = page.inner_text("#timeline")
            assert "Khu phố 1" in timeline and "tạm giữ hai đối tượng" in timeline
            body = page.content()
            assert "op1" not in body and "tiền án" not in body and "Tâm" not in body
            assert page.inner_text("#state") == "đã xử lý xong"
            _shot(page, "resident-track-phone")
            # The photo the resident sees has no EXIF left.
            served = page.request.get(page.get_attribute("#photo", "src"))  # type: ignore[arg-type]
            with Image.open(io.BytesIO(served.body())) as im:
                assert not im.getexif() and im.size == (1280, 720)

            # 4. The problem is back: the resident reopens it.
            page.fill("#reopen-form textarea[name=note]", "Tối nay lại thấy hai người đó quanh hẻm")
            page.click("#reopen")
            page.wait_for_selector("#state.reopened")
            assert [li.get_attribute("data-kind") for li in page.locator("#timeline li").all()][
                -1
            ] == "reopened"
            _shot(page, "resident-reopened-phone")
            page.goto(f"{url}/phan-anh/theo-doi?ma={code}&lang=en")
            assert "Reopened" in page.inner_text("#timeline")
            op.reload()
            op.wait_for_selector("#state[data-state='reopened']")
        finally:
            browser.close()
    assert not errors, errors
    audit = [
        (r.actor, r.action)
        for r in reversed(parts.security.audit.records(limit=200))
        if r.target == str(report_id)
    ]
    assert audit == [
        ("resident", "report.submit"),
        ("op1", "report.view"),
        ("op1", "report.assign"),
        ("op1", "report.view"),
        ("op1", "report.evidence_link"),
        ("op1", "report.view"),
        ("op1", "report.resolve"),
        ("op1", "report.view"),
        ("resident", "report.reopen"),
        ("op1", "report.view"),
    ], audit
