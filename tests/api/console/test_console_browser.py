"""The review console in a real headless Chromium (Debian's, driven by Playwright) against the real
service replaying a clip: live items, the review workflow, roles, scopes, the unredacted view, and
screenshots of the main pages (written to out/screenshots/ and checked to render)."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from api.auth import Role
from api.config import parse_config
from api.demo import DEMO_CAMERAS, DEMO_KHU_PHO, DEMO_WARDS
from api.service import Service
from tests.api.support import wait_in_page

pytestmark = pytest.mark.slow
playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SHOTS = Path(__file__).resolve().parents[3] / "out" / "screenshots"
PASSWORD = "browser-test-pass-1"
LAPTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, footage_dir: Path, models_dir: Path
) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("console")

    def camera(name: str, khu_pho: str) -> dict:
        spec = DEMO_CAMERAS[name]
        return {
            "name": spec["name"],
            "khu_pho": khu_pho,
            "replay": {"path": str(footage_dir / spec["clip"]), "analysis_fps": 2, "speed": 1},
            "events": {"rules": spec["rules"]},
        }

    config = parse_config(
        {
            "detector": {"model": str(models_dir / "yolov8n-coco.onnx"), "imgsz": 320},
            "storage": {
                "database": {"path": str(tmp / "events.db")},
                "objects": {"type": "local", "root": str(tmp / "media")},
            },
            "privacy": {"face_model": str(models_dir / "face_detection_yunet.onnx")},
            "api": {"port": 0, "sse_heartbeat_s": 2},
            "wards": DEMO_WARDS,
            "khu_pho": DEMO_KHU_PHO,
            "cameras": {"street": camera("street", "kp1"), "intersection": camera("intersection", "kp3")},
        }
    )
    svc = Service(config)
    auth = svc.security.auth
    auth.add_user("op1", PASSWORD, Role.OPERATOR, ["kp1"], unredacted=True)
    auth.add_user("view1", PASSWORD, Role.VIEWER, ["kp1"])
    auth.add_user("op3", PASSWORD, Role.OPERATOR, ["kp3"])
    urls: list[str] = []
    thread = threading.Thread(target=svc.serve, kwargs={"on_ready": urls.append}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not urls and time.monotonic() < deadline:
        time.sleep(0.05)
    assert urls, "API did not come up"
    svc.url = urls[0]  # type: ignore[attr-defined]
    try:
        yield svc
    finally:
        svc.shutdown()
        thread.join(30)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Session:
    """One logged-in browser context; collects console errors of every page it opens."""

    def __init__(
        self, browser: object, url: str, username: str, password: str, viewport: dict = LAPTOP
    ) -> None:
        self.context = browser.new_context(viewport=viewport, locale="vi-VN")  # type: ignore[attr-defined]
        self.page = self.context.new_page()
        self.url = url
        self.errors: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(f"{url}/console")
        assert "/login" in self.page.url  # not logged in: the login page
        self.page.fill("input[name=username]", username)
        self.page.fill("input[name=password]", password)
        self.page.click("#login-form button[type=submit]")
        self.page.wait_for_url(f"{url}/console**")

    def change_one_time_password(self, old: str, new: str) -> None:
        """The first login with a one-time password lands on the password page; change it, log in again."""
        assert self.page.url.endswith("/console/password"), self.page.url
        self.page.fill("input[name=current_password]", old)
        self.page.fill("input[name=new_password]", new)
        self.page.click("form[action='/console/password'] button[type=submit]")
        self.page.wait_for_url(f"{self.url}/login**")
        self.page.fill("input[name=username]", "admin")
        self.page.fill("input[name=password]", new)
        self.page.click("#login-form button[type=submit]")
        self.page.wait_for_url(f"{self.url}/console")

    def goto(self, path: str) -> None:
        self.page.goto(f"{self.url}{path}")

    def shot(self, name: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=False)
        check_rendered(path)
        return path

    def close(self) -> None:
        assert not self.errors, self.errors
        self.context.close()


def check_rendered(path: Path) -> None:
    image = cv2.imread(str(path))
    assert image is not None and image.shape[0] > 300
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    # Not blank: a real page has text and edges, not one flat colour.
    assert grey.std() > 12 and cv2.Canny(grey, 50, 150).mean() > 1.0, path


def wait_for_item(svc: Service, camera: str, timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items, _ = svc.security.review.list(frozenset({camera}))
        with_snap = [
            i
            for i in items
            if any(
                (e := svc.store.get(eid)) is not None and e.snapshot
                for eid in svc.security.review.event_ids(i.id)
            )
        ]
        if with_snap:
            return with_snap[0].id
        time.sleep(0.5)
    raise AssertionError(f"no review item with a snapshot on {camera}")


def test_operator_sees_live_items_acknowledges_resolves_and_audit_shows_it(
    service: Service, browser: object
) -> None:
    op = Session(browser, service.url, "op1", PASSWORD)  # type: ignore[attr-defined]
    page = op.page
    # The feed refreshes itself when the live stream (SSE) reports a change from the replayed clip.
    with page.expect_response(lambda r: "/console/feed" in r.url and r.status == 200, timeout=90_000):
        pass
    page.wait_for_selector("li.item", timeout=30_000)
    assert page.locator("#live.on").count() == 1
    item_id = wait_for_item(service, "street")
    page.wait_for_selector(f"li.item[data-item='{item_id}']", timeout=30_000)
    cameras = {d.get_attribute("data-camera") for d in page.locator("li.item [data-camera]").all()}
    assert cameras == {"street"}, cameras
    assert "Phố đi bộ" in page.inner_text("li.item")  # the camera's name, not its id
    op.shot("feed-laptop")

    page.click(f"li.item[data-item='{item_id}'] a")
    page.wait_for_selector("#ack")
    wait_in_page(
        page, "document.querySelector('img.snap') && document.querySelector('img.snap').naturalWidth > 0"
    )
    op.shot("item-laptop")
    page.click("#ack")
    page.wait_for_selector("#state.acknowledged")
    page.select_option("form[action$='/resolve'] select[name=resolution]", "false_alarm")
    page.fill("form[action$='/resolve'] textarea[name=note]", "Người đi bộ bình thường")
    page.click("#resolve")
    page.wait_for_selector("#state.resolved")
    assert page.inner_text("#resolution") == "báo động giả"
    page.fill("form[action$='/comment'] textarea", "Đã kiểm tra")
    page.click("#comment")
    page.wait_for_selector("ul.comments li")
    op.close()

    admin = Session(browser, service.url, "admin", service.first_admin_password)  # type: ignore[arg-type]
    admin.change_one_time_password(service.first_admin_password, "admin-own-password-1")  # type: ignore[arg-type]
    admin.goto("/console/audit")
    rows = admin.page.locator("tbody tr")
    actions = [
        (r[2], r[3], r[4]) for r in (rows.nth(i).locator("td").all_inner_texts() for i in range(rows.count()))
    ]
    for action in ("review.acknowledge", "review.resolve", "review.comment"):
        assert ("op1", action, item_id) in actions, action
    assert ("op1", "login", "op1") in [(a, b, c) for a, b, c in actions]
    assert any(a == "op1" and b == "snapshot.view" for a, b, _ in actions)
    assert admin.page.locator("#chain.ok").count() == 1
    admin.shot("audit-laptop")
    admin.goto("/console/users")
    admin.shot("users-laptop")
    admin.goto("/console/cameras")
    admin.page.wait_for_selector("li.cam")
    assert admin.page.locator("li.cam").count() == 2
    admin.shot("cameras-laptop")
    admin.close()


def test_viewer_cannot_act(service: Service, browser: object) -> None:
    item_id = wait_for_item(service, "street")
    viewer = Session(browser, service.url, "view1", PASSWORD)  # type: ignore[attr-defined]
    viewer.goto(f"/console/items/{item_id}")
    viewer.page.wait_for_selector("#view-only")
    assert viewer.page.locator("#ack, #resolve, #comment, a.unredact").count() == 0
    # Going around the page: the API says no as well.
    status = viewer.page.evaluate(
        """async (id) => {
            const csrf = document.cookie.split('; ').find(c => c.startsWith('khupho_csrf=')).split('=')[1];
            const headers = {'X-CSRF-Token': csrf};
            const r = await fetch(`/review/items/${id}/acknowledge`, {method: 'POST', headers});
            return r.status;
        }""",
        item_id,
    )
    assert status == 403
    assert viewer.errors == ["Failed to load resource: the server responded with a status of 403 (Forbidden)"]
    viewer.errors.clear()  # the refusal we asked for
    viewer.close()


def test_operator_of_another_khu_pho_never_sees_the_camera(service: Service, browser: object) -> None:
    street_item = wait_for_item(service, "street")
    op3 = Session(browser, service.url, "op3", PASSWORD, viewport=PHONE)  # type: ignore[attr-defined]
    page = op3.page
    assert "street" not in page.content()
    op3.shot("feed-phone")
    op3.goto("/console/cameras")
    assert [c.get_attribute("data-camera") for c in page.locator("li.cam").all()] == ["intersection"]
    op3.goto(f"/console/items/{street_item}")
    assert page.locator("p.error").count() == 1 and "street" not in page.content()
    response = page.request.get(f"{service.url}/console/items/{street_item}/thumb.jpg")  # type: ignore[attr-defined]
    assert response.status == 404
    assert all("404" in e for e in op3.errors)
    op3.errors.clear()  # the 404 page logs the failed load; that is the point here
    op3.close()


def test_unredacted_view_asks_for_a_reason_and_is_logged(service: Service, browser: object) -> None:
    item_id = wait_for_item(service, "street")
    op = Session(browser, service.url, "op1", PASSWORD, viewport=PHONE)  # type: ignore[attr-defined]
    op.goto(f"/console/items/{item_id}")
    op.shot("item-phone")
    op.page.click("a.unredact >> nth=0")
    op.page.wait_for_selector("#reason-form")
    assert op.page.locator("#original").count() == 0  # nothing shown before a reason
    op.page.fill("#reason-form input[name=reason]", "Xác minh phản ánh của người dân")
    op.page.click("#reason-form button")
    wait_in_page(
        op.page, "document.querySelector('#original') && document.querySelector('#original').naturalWidth > 0"
    )
    op.close()
    records = [r for r in service.security.audit.records(action="snapshot.unredacted") if r.actor == "op1"]
    assert records and records[0].detail["reason"] == "Xác minh phản ánh của người dân"


def test_screenshots_are_not_blank() -> None:
    # Runs last in this module: each screenshot above was checked as it was taken; this checks the set.
    shots = sorted(SHOTS.glob("*.png"))
    assert {p.stem for p in shots} >= {
        "feed-laptop",
        "item-laptop",
        "audit-laptop",
        "feed-phone",
        "item-phone",
    }
    for path in shots:
        check_rendered(path)
    assert np.all([p.stat().st_size > 10_000 for p in shots])
