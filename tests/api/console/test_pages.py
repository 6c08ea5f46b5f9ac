"""Console pages without a browser: login redirects, each page renders per role, forms need CSRF."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from api.auth import Role
from tests.api.support import ADMIN_PASSWORD, PASSWORD, Parts, jpeg_bytes, make_event, start

PAGES = [
    "/console",
    "/console/feed",
    "/console/cameras",
    "/console/audit",
    "/console/users",
    "/console/password",
]


def _form_login(c: TestClient, username: str, password: str) -> str:
    r = c.post("/login", data={"username": username, "password": password}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return c.cookies["khupho_csrf"]


@pytest.fixture
def seeded(parts: Parts) -> str:
    ev = make_event(1)
    parts.store.apply(start(ev))
    parts.objects.put("snapshots/cam1/ev001.jpg", jpeg_bytes(), "image/jpeg")
    parts.store.set_snapshot(ev.id, "snapshots/cam1/ev001.jpg", 0.9)
    parts.security.auth.add_user("view1", PASSWORD, Role.VIEWER, ["kp1"])
    return parts.security.review.ingest(start(ev))


def test_pages_redirect_to_login_without_a_session(parts: Parts, seeded: str) -> None:
    with TestClient(parts.app(), follow_redirects=False) as c:
        assert c.get("/").headers["location"] == "/console"
        for path in [*PAGES, f"/console/items/{seeded}", f"/console/items/{seeded}/thumb.jpg"]:
            r = c.get(path)
            assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), path
        assert c.post(f"/console/items/{seeded}/acknowledge").status_code == 303
        login_page = c.get("/login")
        assert login_page.status_code == 200 and "Đăng nhập" in login_page.text
        assert (
            c.get("/static/console.js").status_code == 200 and c.get("/static/../app.py").status_code == 404
        )


def test_login_form_errors_and_open_redirects(parts: Parts) -> None:
    with TestClient(parts.app(), follow_redirects=False) as c:
        r = c.post("/login", data={"username": "admin", "password": "wrong-wrong"})
        assert r.status_code == 401 and "Sai tên đăng nhập hoặc mật khẩu" in r.text
        r = c.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD, "next": "//evil.example"})
        assert r.status_code == 303 and r.headers["location"] == "/console"


def test_every_page_renders_for_admin_in_both_languages(parts: Parts, seeded: str) -> None:
    with TestClient(parts.app()) as c:
        _form_login(c, "admin", ADMIN_PASSWORD)
        for path in [*PAGES, f"/console/items/{seeded}", "/console/events/ev001/original"]:
            r = c.get(path)
            assert r.status_code == 200, path
            assert path == "/console/feed" or '<html lang="vi">' in r.text, path  # the feed is a fragment
        assert "Nhật ký truy cập và thao tác" in c.get("/console/audit").text
        english = c.get("/console", params={"lang": "en"})
        assert '<html lang="en">' in english.text and "Events" in english.text
        assert '<html lang="en">' in c.get("/console/cameras").text  # remembered
        thumb = c.get(f"/console/items/{seeded}/thumb.jpg")
        assert thumb.status_code == 200 and thumb.content == jpeg_bytes()


def test_forms_need_the_csrf_token_and_viewers_cannot_act(parts: Parts, seeded: str) -> None:
    with TestClient(parts.app(), follow_redirects=False) as c:
        token = _form_login(c, "admin", ADMIN_PASSWORD)
        assert c.post(f"/console/items/{seeded}/acknowledge").status_code == 403
        assert c.post(f"/console/items/{seeded}/acknowledge", data={"csrf_token": "x"}).status_code == 403
        r = c.post(f"/console/items/{seeded}/acknowledge", data={"csrf_token": token})
        assert r.status_code == 303 and parts.security.review.get(seeded).state == "acknowledged"  # type: ignore[union-attr]
        page = c.get(f"/console/items/{seeded}").text
        assert re.search(r'name="csrf_token" value="' + re.escape(token) + '"', page)
    with TestClient(parts.app(), follow_redirects=False) as c:
        token = _form_login(c, "view1", PASSWORD)
        page = c.get(f"/console/items/{seeded}").text
        assert 'id="view-only"' in page and 'id="ack"' not in page
        r = c.post(
            f"/console/items/{seeded}/resolve", data={"csrf_token": token, "resolution": "false_alarm"}
        )
        assert r.status_code == 403 and parts.security.review.get(seeded).state == "acknowledged"  # type: ignore[union-attr]
        assert c.get("/console/audit").status_code == 403 and c.get("/console/users").status_code == 403


def test_admin_adds_and_disables_users_in_the_console(parts: Parts) -> None:
    with TestClient(parts.app(), follow_redirects=False) as c:
        token = _form_login(c, "admin", ADMIN_PASSWORD)
        form = {
            "csrf_token": token,
            "username": "op9",
            "password": PASSWORD,
            "role": "operator",
            "scopes": "kp1",
        }
        assert c.post("/console/users", data=form).status_code == 303
        user = parts.security.auth.user("op9")
        assert user is not None and user.scopes == ["kp1"] and user.must_change
    with TestClient(parts.app(), follow_redirects=False) as newcomer:
        token = _form_login(newcomer, "op9", PASSWORD)
        # A one-time password: every page sends the user to change it first.
        assert newcomer.get("/console").headers["location"] == "/console/password"
        change = {"csrf_token": token, "current_password": PASSWORD, "new_password": "my-own-password-1"}
        assert newcomer.post("/console/password", data=change).headers["location"] == "/login"
        _form_login(newcomer, "op9", "my-own-password-1")
        assert newcomer.get("/console").status_code == 200
    with TestClient(parts.app(), follow_redirects=False) as c:
        token = _form_login(c, "admin", ADMIN_PASSWORD)
        form["csrf_token"] = token
        bad = c.post("/console/users", data={**form, "username": "op8", "scopes": "kp9"})
        assert "unknown" in bad.headers["location"]
        assert c.post("/console/users/op9/toggle", data={"csrf_token": token}).status_code == 303
        assert parts.security.auth.user("op9").disabled  # type: ignore[union-attr]
    admin_actions = [r.action for r in parts.security.audit.records(actor="admin")]
    assert admin_actions[0] == "user.change" and "user.add" in admin_actions
