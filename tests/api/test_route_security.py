"""Every route of the OpenAPI needs credentials unless public; ids of another khu phố are 404; hardening."""

from __future__ import annotations

import base64
import json
import re

import pytest
from fastapi.testclient import TestClient

from api.auth import Role
from events.model import EventType
from tests.api.support import PASSWORD, Parts, jpeg_bytes, login, make_event, start

# Public by design: liveness, logging in, residents' reports through Open311 (rate-limited), and
# read-only traffic aggregates for signage and apps (tests/api/test_public.py).
PUBLIC = {
    ("GET", "/healthz"),
    ("POST", "/auth/login"),
    ("GET", "/open311/v2/services.json"),
    ("GET", "/open311/v2/services/{service_code}.json"),
    ("GET", "/open311/v2/requests.json"),
    ("POST", "/open311/v2/requests.json"),
    ("GET", "/open311/v2/requests/{service_request_id}.json"),
    ("GET", "/open311/v2/tokens/{token}.json"),
    ("GET", "/open311/v2/servicerequestupdates.json"),
    ("GET", "/open311/v2/media/{name}.jpg"),
    ("GET", "/public/traffic"),
    ("GET", "/public/traffic/stream"),
    ("GET", "/public/signage"),
}


def _routes(client: TestClient) -> list[tuple[str, str]]:
    spec = client.get("/openapi.json").json()
    return [(m.upper(), p) for p, ops in spec["paths"].items() for m in ops]


def _seed_other_khu_pho(parts: Parts) -> dict[str, str]:
    """An event, review item and snapshot on cam2 (kp2): real ids an operator of kp1 must not see."""
    ev = make_event(7, camera="cam2", type=EventType.LOITERING)
    parts.store.apply(start(ev))
    parts.objects.put("snapshots/cam2/ev007.jpg", jpeg_bytes(), "image/jpeg")
    parts.store.set_snapshot(ev.id, "snapshots/cam2/ev007.jpg", 0.9)
    parts.objects.put("clips/cam2/ev007.mp4", b"\x00\x00\x00\x18ftypisom", "video/mp4")
    parts.store.set_clip(ev.id, "clips/cam2/ev007.mp4")
    item_id = parts.security.review.ingest(start(ev))
    from api.reports.desk import Submission
    from api.reports.install import default_desk

    report, _ = default_desk(parts.security, parts.store, parts.objects).submit(
        Submission("security", "Người lạ trong hẻm", address_string="5 Hẻm 12", khu_pho="kp2"), address="test"
    )
    return {
        "report_id": str(report.id),
        "event_id": ev.id,
        "item_id": item_id,
        "camera_id": "cam2",
        "username": "admin",
        "key_id": "nokey",
    }


def test_every_route_needs_credentials_except_the_public_ones(client: TestClient, parts: Parts) -> None:
    routes = _routes(client)
    assert len(routes) >= 25
    checked = []
    with TestClient(parts.app()) as anonymous:
        for method, path in routes:
            url = re.sub(r"\{[^}]+\}", "x", path)
            r = anonymous.request(method, url)
            if (method, path) in PUBLIC:
                assert r.status_code != 401, (method, path)
                continue
            assert r.status_code == 401, (method, path, r.status_code)
            assert r.headers["www-authenticate"] == "Bearer"
            checked.append((method, path))
        # Not in the schema, not public either.
        for url in ("/docs", "/openapi.json", "/metrics"):
            assert anonymous.get(url).status_code == 401, url
    print(f"\n{len(checked)} routes answered 401 without credentials; {len(PUBLIC)} public")
    assert len(checked) == len(routes) - len(PUBLIC)


def test_ids_of_another_khu_pho_are_404_like_unknown_ones(parts: Parts) -> None:
    ids = _seed_other_khu_pho(parts)
    parts.security.auth.add_user("op1", PASSWORD, Role.OPERATOR, ["kp1"])
    scoped = 0
    with TestClient(parts.app()) as admin, TestClient(parts.app()) as op:
        login(admin)
        login(op, "op1", PASSWORD)
        for method, path in _routes(admin):
            names = re.findall(r"\{([^}]+)\}", path)
            if not names or set(names) & {"username", "key_id"} or (method, path) in PUBLIC:
                continue  # administrators' routes: 403 for everyone else, not a scope question
            url = path.format(**ids)
            body = {
                "assign": {"username": "op1"},
                "resolve": {"resolution": "false_alarm", "note": ""},
                "comments": {"text": "x"},
                "actions": {"action": "note", "internal_note": "x"},
                "evidence": {"event_id": ids["event_id"]},
            }.get(path.rsplit("/", 1)[-1])
            params = {"reason": "investigating a report"} if "unredacted" in path or "clip" in path else None
            seen_by_admin = admin.request(method, url, params=params, json=body)
            assert seen_by_admin.status_code < 400, (method, path, seen_by_admin.status_code)
            r = op.request(method, url, params=params, json=body)
            unknown = op.request(method, re.sub(r"\{[^}]+\}", "nope", path), params=params, json=body)
            assert r.status_code == 404 == unknown.status_code, (method, path, r.status_code)
            # The same answer as for an id that does not exist: nothing confirms it does.
            same = r.text
            for value in ids.values():
                same = same.replace(value, "nope")
            assert same == unknown.text, (method, path)
            scoped += 1
    print(f"\n{scoped} routes with an id answered 404 for another khu phố's id")
    assert scoped >= 10
    # Lists and the stream's filter simply leave it out.
    with TestClient(parts.app()) as op:
        login(op, "op1", PASSWORD)
        assert op.get("/events").json()["items"] == [] and op.get("/events/count").json() == {"count": 0}
        assert op.get("/events", params={"camera": "cam2"}).json()["items"] == []
        assert op.get("/review/items").json()["items"] == []
        assert [c["id"] for c in op.get("/cameras").json()] == ["cam1"]


def test_supervisor_sees_the_whole_ward(parts: Parts) -> None:
    parts.store.apply_many(
        [start(make_event(i, camera=cam)) for i, cam in enumerate(["cam1", "cam2", "cam3"])]
    )
    parts.security.auth.add_user("sup1", PASSWORD, Role.SUPERVISOR, ["w1"])
    with TestClient(parts.app()) as c:
        login(c, "sup1", PASSWORD)
        assert sorted(e["camera"] for e in c.get("/events").json()["items"]) == ["cam1", "cam2"]
        assert c.get("/events/ev002").status_code == 404  # cam3 is in ward w2


def test_scoped_pagination_walks_every_visible_event_once(parts: Parts) -> None:
    cams = ["cam1", "cam2", "cam3"]
    parts.store.apply_many([start(make_event(i, camera=cams[i % 3])) for i in range(30)])
    parts.security.auth.add_user("sup1", PASSWORD, Role.SUPERVISOR, ["w1"])
    with TestClient(parts.app()) as c:
        login(c, "sup1", PASSWORD)
        seen, cursor = [], None
        while True:
            page = c.get("/events", params={"limit": 4, **({"cursor": cursor} if cursor else {})}).json()
            seen += [e["id"] for e in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        expected = [f"ev{i:03d}" for i in reversed(range(30)) if cams[i % 3] != "cam3"]
        assert seen == expected
        assert c.get("/events/count").json() == {"count": 20}


def test_metrics_need_an_admin_or_a_metrics_key(client: TestClient, parts: Parts) -> None:
    _, key = parts.security.auth.add_key("prometheus", Role.METRICS, [])
    _, viewer_key = parts.security.auth.add_key("signage", Role.VIEWER, ["kp1"])
    with TestClient(parts.app()) as c:
        r = c.get("/metrics", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200 and "khupho_review_time_to_acknowledge_seconds" in r.text
        assert c.get("/metrics", headers={"X-API-Key": viewer_key}).status_code == 403
        assert (
            c.get("/events", headers={"X-API-Key": key}).status_code == 401
        )  # metrics keys read metrics only
    assert client.get("/metrics").status_code == 200  # admin session


@pytest.mark.parametrize("raw", [[2**70, "x"], [-(2**70), "x"], [1, "x" * 500], "garbage", [1.5, "x"]])
def test_tampered_cursor_is_422(client: TestClient, raw: object) -> None:
    cursor = base64.urlsafe_b64encode(json.dumps(raw).encode()).decode().rstrip("=")
    for url in ("/events", "/review/items"):
        r = client.get(url, params={"cursor": cursor})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "cursor"], (url, r.text)


def test_security_headers_and_error_bodies(client: TestClient, parts: Parts) -> None:
    for url in ("/healthz", "/events", "/login", "/console"):
        r = client.get(url)
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
    # A snapshot whose file is gone: 404 without the object key or the storage root.
    parts.store.apply(start(make_event(1)))
    parts.store.set_snapshot("ev001", "snapshots/cam1/gone.jpg", 0.5)
    r = client.get("/events/ev001/snapshot")
    assert r.status_code == 404 and "gone.jpg" not in r.text and str(parts.objects.root) not in r.text
    # Validation errors do not echo the input (it may be a password).
    r = client.post("/auth/login", json={"username": "admin", "password": 12345678901})
    assert r.status_code == 422 and "12345678901" not in r.text


def test_found_by_the_fuzzer_a_huge_time_zone_name_is_422(client: TestClient) -> None:
    for tz in ("T̺̺̕o͞ ̷i̲̬͇̪͙n̝̗͕v̟̜̘̦͟o̶̙̰̠kè͚̮̺̪̹̱̤" * 3, "x" * 300):
        r = client.get("/traffic", params={"tz": tz})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "tz"]


def test_docs_are_served_to_logged_in_users(client: TestClient) -> None:
    r = client.get("/docs")
    assert r.status_code == 200 and "swagger" in r.text.lower()
    assert "cdn.jsdelivr.net" in r.headers["content-security-policy"]


def test_unredacted_needs_permission_and_a_reason_and_is_audited(parts: Parts) -> None:
    ids = _seed_other_khu_pho(parts)
    parts.objects.put("snapshots/cam2/ev007.unredacted.jpg", jpeg_bytes(seed=1), "image/jpeg")
    parts.security.auth.add_user("op2", PASSWORD, Role.OPERATOR, ["kp2"])
    parts.security.auth.add_user("op2u", PASSWORD, Role.OPERATOR, ["kp2"], unredacted=True)
    url = f"/events/{ids['event_id']}/snapshot/unredacted"
    with TestClient(parts.app()) as c:
        login(c, "op2", PASSWORD)
        redacted = c.get(f"/events/{ids['event_id']}/snapshot")
        assert redacted.status_code == 200 and redacted.content == jpeg_bytes()
        assert c.get(url, params={"reason": "checking a report"}).status_code == 403
    with TestClient(parts.app()) as c:
        login(c, "op2u", PASSWORD)
        assert c.get(url).status_code == 422  # no reason
        assert c.get(url, params={"reason": "x"}).status_code == 422  # too short
        r = c.get(url, params={"reason": "phản ánh của cư dân số 12"})
        assert r.status_code == 200 and r.content == jpeg_bytes(seed=1)
    views = {(r.actor, r.action): r for r in parts.security.audit.records()}
    assert ("op2", "snapshot.view") in views
    assert views[("op2u", "snapshot.unredacted")].detail["reason"] == "phản ánh của cư dân số 12"
