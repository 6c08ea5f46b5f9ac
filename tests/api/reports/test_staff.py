"""The staff side: the queue per khu phố (another khu phố's report is a 404), triage and answers in
the audit log, camera evidence locked until the report has been closed 90 days, the resident's
reopen window, routing by khu phố boundary or to the ward queue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from api.auth import Role, ScopeIndex
from api.auth.config import KhuPhoConfig, WardConfig
from api.reports import ReportDesk
from api.reports.desk import Submission
from api.reports.errors import ReportRefused
from api.reports.routing import Router
from events.model import EventTransition, EventType, Phase
from tests.api.reports.support import OPEN311, file_report, jpeg_with_gps, make_desk
from tests.api.support import PASSWORD, Parts, login, make_event, start


def _form_login(c: TestClient, username: str) -> str:
    r = c.post("/login", data={"username": username, "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return c.cookies["khupho_csrf"]


def test_operator_of_another_khu_pho_cannot_see_the_report(parts: Parts, public: TestClient) -> None:
    rid = file_report(public, photo=jpeg_with_gps()).json()[0]["service_request_id"]  # lands in kp1
    parts.security.auth.add_user("op1", PASSWORD, Role.OPERATOR, ["kp1"])
    parts.security.auth.add_user("op2", PASSWORD, Role.OPERATOR, ["kp2"])
    parts.security.auth.add_user("sup2", PASSWORD, Role.SUPERVISOR, ["w2"])
    with TestClient(public.app) as own:
        login(own, "op1", PASSWORD)
        assert own.get(f"/reports/{rid}").status_code == 200
        assert [r["id"] for r in own.get("/reports").json()] == [int(rid)]
    for username in ("op2", "sup2"):
        with TestClient(public.app, follow_redirects=False) as other:
            login(other, username, PASSWORD)
            assert other.get("/reports").json() == []
            for method, url, body in (
                ("GET", f"/reports/{rid}", None),
                ("POST", f"/reports/{rid}/actions", {"action": "note", "internal_note": "x"}),
                ("POST", f"/reports/{rid}/evidence", {"event_id": "ev001"}),
            ):
                r = other.request(method, url, json=body)
                unknown = other.request(method, url.replace(rid, "424242"), json=body)
                assert r.status_code == 404 == unknown.status_code, (username, url)
                assert r.text == unknown.text
            # The console too: its page, its photo and its forms.
            _form_login(other, username)
            assert other.get(f"/console/reports/{rid}").status_code == 404
            assert other.get(f"/console/reports/{rid}/photo.jpg").status_code == 404
            token = other.cookies["khupho_csrf"]
            other.headers.pop("X-CSRF-Token")  # the API login's; the form carries the new session's
            assert (
                other.post(
                    f"/console/reports/{rid}/resolve", data={"csrf_token": token, "public_note": "x"}
                ).status_code
                == 404
            )
            assert f"#{rid}" not in other.get("/console/reports").text


def test_triage_steps_are_audited_and_reach_the_public_timeline(
    parts: Parts, public: TestClient, desk: ReportDesk
) -> None:
    # No khu phố chosen and no boundaries: the ward queue.
    rid = file_report(
        public, khu_pho="", description="Rác thải đổ trộm đầu hẻm 45", service_code="security"
    ).json()[0]["service_request_id"]
    report = desk.store.get(int(rid))
    assert report is not None and report.khu_pho is None and report.state == "received"
    parts.security.auth.add_user("sup1", PASSWORD, Role.SUPERVISOR, ["w1"])
    parts.security.auth.add_user("op1", PASSWORD, Role.OPERATOR, ["kp1"])
    # Two wards are configured and none is the default: the ward queue is the administrators'.
    with TestClient(public.app) as admin:
        login(admin)
        steps = [
            {"action": "category", "service_code": "environment"},
            {"action": "route", "khu_pho": "kp1"},
        ]
        for body in steps:
            assert admin.post(f"/reports/{rid}/actions", json=body).status_code == 200, body
    with TestClient(public.app) as op:
        login(op, "op1", PASSWORD)
        for body in (
            {"action": "assign", "username": "op1"},
            {"action": "assign", "username": "sup1"},
            {"action": "start", "public_note": "Đã báo đội vệ sinh"},
            {"action": "note", "internal_note": "xe rác đến 17h"},
        ):
            r = op.post(f"/reports/{rid}/actions", json=body)
            assert r.status_code == 200, (body, r.text)
        assert (
            op.post(f"/reports/{rid}/actions", json={"action": "reject"}).status_code == 400
        )  # needs a reason
        assert (
            op.post(f"/reports/{rid}/actions", json={"action": "assign", "username": "nobody"}).status_code
            == 400
        )
        r = op.post(f"/reports/{rid}/actions", json={"action": "resolve", "public_note": "Đã thu gom"})
        detail = r.json()
        assert detail["state"] == "resolved" and detail["assignee"] == "sup1"
        assert op.post(f"/reports/{rid}/actions", json={"action": "start"}).status_code == 409  # closed
        # A duplicate merged into it.
        dup = file_report(public, description="Rác đầu hẻm 45 lại bị đổ").json()[0]["service_request_id"]
        r = op.post(f"/reports/{dup}/actions", json={"action": "merge", "into": rid})
        assert (
            r.status_code == 200 and r.json()["state"] == "rejected" and r.json()["merged_into"] == int(rid)
        )
    (req,) = public.get(f"{OPEN311}/requests/{rid}.json").json()
    assert req["service_code"] == "environment" and req["agency_responsible"] == "Khu phố 1"
    assert req["status"] == "closed" and req["status_notes"] == "Đã thu gom"
    (merged,) = public.get(f"{OPEN311}/requests/{dup}.json").json()
    assert merged["status"] == "closed" and merged["merged_into"] == rid
    timeline = [u.kind for u in desk.store.updates(int(rid), public_only=True)]
    # Assigning an officer changes nothing the resident sees once the khu phố has it (and names nobody).
    assert timeline == ["received", "category", "routed", "in_progress", "resolved"]
    audit = [
        (r.actor, r.action) for r in reversed(parts.security.audit.records(limit=100)) if r.target == rid
    ]
    assert audit == [
        ("resident", "report.submit"),
        ("admin", "report.category"),
        ("admin", "report.route"),
        ("op1", "report.assign"),
        ("op1", "report.assign"),
        ("op1", "report.start"),
        ("op1", "report.note"),
        ("op1", "report.resolve"),
    ]
    assert parts.security.audit.verify().ok


def test_viewers_read_but_cannot_act(parts: Parts, public: TestClient) -> None:
    rid = file_report(public).json()[0]["service_request_id"]
    parts.security.auth.add_user("view1", PASSWORD, Role.VIEWER, ["kp1"])
    with TestClient(public.app) as viewer:
        login(viewer, "view1", PASSWORD)
        assert viewer.get(f"/reports/{rid}").status_code == 200
        r = viewer.post(f"/reports/{rid}/actions", json={"action": "start"})
        assert r.status_code == 403


def test_evidence_is_locked_until_the_report_is_closed_for_90_days(parts: Parts, desk: ReportDesk) -> None:
    old = make_event(1, camera="cam1", end_time=datetime(2024, 5, 1, 12, 5, tzinfo=UTC), active=False)
    already = make_event(2, camera="cam1", end_time=datetime(2024, 5, 1, 12, 5, tzinfo=UTC), active=False)
    other_place = make_event(3, camera="cam2")
    parts.store.apply_many(
        [EventTransition(phase=Phase.END, event=e) for e in (old, already)] + [start(other_place)]
    )
    parts.store.set_locked(already.id, True)  # locked by someone else before the report
    parts.security.auth.add_user("op1", PASSWORD, Role.OPERATOR, ["kp1"])
    report, _ = desk.submit(
        Submission("security", "Trộm xe", address_string="12 Lê Lợi", khu_pho="kp1"), address="1.2.3.4"
    )
    expired_before = {e.id for e in parts.store.expired(datetime(2030, 1, 1, tzinfo=UTC))}
    assert old.id in expired_before  # retention would purge it
    with TestClient(parts.app(reports=desk)) as op:
        login(op, "op1", PASSWORD)
        for event_id in (old.id, already.id):
            r = op.post(f"/reports/{report.id}/evidence", json={"event_id": event_id})
            assert r.status_code == 200, r.text
        assert [e["event_id"] for e in r.json()["evidence"]] == [old.id, already.id]
        # An event of a camera the operator may not see is unknown.
        assert op.post(f"/reports/{report.id}/evidence", json={"event_id": other_place.id}).status_code == 400
        assert (
            op.post(
                f"/reports/{report.id}/actions", json={"action": "resolve", "public_note": "Đã bắt"}
            ).status_code
            == 200
        )
    assert parts.store.get(old.id).locked and old.id not in {
        e.id for e in parts.store.expired(datetime(2030, 1, 1, tzinfo=UTC))
    }
    now = datetime.now(UTC)
    assert desk.release_evidence(now + timedelta(days=89)) == 0
    assert parts.store.get(old.id).locked
    assert desk.release_evidence(now + timedelta(days=91)) == 1
    assert not parts.store.get(old.id).locked
    assert parts.store.get(already.id).locked  # its own lock stays
    assert old.id in {e.id for e in parts.store.expired(datetime(2030, 1, 1, tzinfo=UTC))}
    assert desk.release_evidence(now + timedelta(days=200)) == 0  # released once
    actions = [r.action for r in parts.security.audit.records()]
    assert actions.count("report.evidence_link") == 2 and actions.count("report.evidence_release") == 1


def test_evidence_still_needed_by_an_open_report_stays_locked(parts: Parts, desk: ReportDesk) -> None:
    ev = make_event(1, camera="cam1")
    parts.store.apply(start(ev))
    parts.security.auth.add_user("op1", PASSWORD, Role.OPERATOR, ["kp1"])
    a, _ = desk.submit(Submission("security", "A", address_string="x", khu_pho="kp1"), address="1.1.1.1")
    b, _ = desk.submit(Submission("security", "B", address_string="x", khu_pho="kp1"), address="1.1.1.2")
    with TestClient(parts.app(reports=desk)) as op:
        login(op, "op1", PASSWORD)
        for rid in (a.id, b.id):
            assert op.post(f"/reports/{rid}/evidence", json={"event_id": ev.id}).status_code == 200
        assert (
            op.post(f"/reports/{a.id}/actions", json={"action": "reject", "public_note": "Trùng"}).status_code
            == 200
        )
    assert desk.release_evidence(datetime.now(UTC) + timedelta(days=91)) == 0
    assert parts.store.get(ev.id).locked  # report B is open


def test_the_resident_reopens_within_14_days_only(parts: Parts, desk: ReportDesk) -> None:
    report, code = desk.submit(
        Submission("traffic", "Đèn đỏ hỏng", address_string="Ngã tư", khu_pho="kp1"), address="a"
    )
    with pytest.raises(ReportRefused) as err:
        desk.reopen(code, "", address="a")
    assert err.value.kind == "not_reopenable"
    admin = parts.security.auth.user("admin")
    from api.auth.principal import Principal

    me = Principal(kind="user", id=str(admin.id), name="admin", role=Role.ADMIN, scopes=())
    desk.act(me, report.id, "resolve", address="b", public_note="Đã sửa đèn")
    reopened = desk.reopen(code.lower(), "Đèn lại hỏng", address="a")
    assert reopened.state == "reopened" and reopened.closed is None
    desk.act(me, report.id, "resolve", address="b", public_note="Đã thay bóng")
    with parts.security.db.tx() as c:  # the answer was 15 days ago
        c.execute(
            "UPDATE reports SET closed_us = closed_us - ? WHERE id = ?", (15 * 86_400_000_000, report.id)
        )
    with pytest.raises(ReportRefused) as err:
        desk.reopen(code, "", address="a")
    assert err.value.kind == "too_late" and err.value.status == 409
    with pytest.raises(ReportRefused) as err:
        desk.reopen("AAAA-AAAA-AAAA-AAAA-AAAA", "", address="a")
    assert err.value.status == 404


def test_routing_by_chosen_khu_pho_boundary_or_ward_queue() -> None:
    square = [(10.770, 106.690), (10.770, 106.700), (10.780, 106.700), (10.780, 106.690)]
    khu_pho = {
        "kp1": KhuPhoConfig(name="Khu phố 1", ward="w1", boundary=square),
        "kp2": KhuPhoConfig(name="Khu phố 2", ward="w1"),
    }
    router = Router(khu_pho, {"w1": WardConfig(name="Phường Bến Nghé")})
    assert router.place(chosen="kp2", lat=10.775, lon=106.695).khu_pho == "kp2"  # the resident's choice wins
    inside = router.place(chosen=None, lat=10.775, lon=106.695)
    assert (inside.khu_pho, inside.ward) == ("kp1", "w1")
    outside = router.place(chosen=None, lat=10.790, lon=106.695)
    assert (outside.khu_pho, outside.ward) == (None, "w1")  # the only ward's queue
    assert router.place(chosen=None, lat=None, lon=None).khu_pho is None
    with pytest.raises(ValueError):
        Router(khu_pho, {"w1": WardConfig(name="x")}, default_ward="w9")


def test_a_point_inside_a_boundary_lands_in_that_queue(parts: Parts, tmp_path) -> None:  # type: ignore[no-untyped-def]
    scope = ScopeIndex(
        wards={"w1": WardConfig(name="Phường Bến Nghé")},
        khu_pho={
            "kp1": KhuPhoConfig(
                name="Khu phố 1", ward="w1", boundary=[(10.77, 106.69), (10.77, 106.70), (10.78, 106.70)]
            ),
            "kp2": KhuPhoConfig(name="Khu phố 2", ward="w1"),
        },
        camera_khu_pho={"cam1": "kp1"},
    )
    from tests.api.support import open_security

    security = open_security(tmp_path / "other.db", scope=scope)
    parts2 = Parts(parts.store, parts.objects, parts.bus, parts.metrics, security)
    desk = make_desk(parts2)
    security.auth.add_user("op2", PASSWORD, Role.OPERATOR, ["kp2"])
    security.auth.add_user("sup", PASSWORD, Role.SUPERVISOR, ["w1"])
    with TestClient(parts2.app(reports=desk)) as c:
        inside = file_report(c, khu_pho="", lat="10.772", long="106.699").json()[0]
        outside = file_report(c, khu_pho="", lat="10.90", long="106.60").json()[0]
        assert inside["service_notice"] == "Khu phố 1" and outside["service_notice"] == "Phường Bến Nghé"
        login(c, "sup", PASSWORD)
        queue = {r["id"]: (r["khu_pho"], r["ward"]) for r in c.get("/reports").json()}
        assert queue == {
            int(inside["service_request_id"]): ("kp1", "w1"),
            int(outside["service_request_id"]): (None, "w1"),
        }
    with TestClient(parts2.app(reports=desk)) as op2:
        login(op2, "op2", PASSWORD)
        assert op2.get("/reports").json() == []  # neither is kp2's; the ward queue is the supervisor's
    security.close()


def test_console_pages_render_in_both_languages(parts: Parts, public: TestClient) -> None:
    rid = file_report(public, photo=jpeg_with_gps()).json()[0]["service_request_id"]
    # A camera event of the same khu phố an hour before the report: offered as evidence.
    when = datetime.now(UTC) - timedelta(hours=1)
    parts.store.apply(start(make_event(5, camera="cam1", type=EventType.LOITERING, start_time=when)))
    parts.store.apply(start(make_event(6, camera="cam1", start_time=when - timedelta(days=2))))  # too old
    parts.security.auth.add_user("op1", PASSWORD, Role.OPERATOR, ["kp1"])
    with TestClient(public.app) as c:
        _form_login(c, "op1")
        queue = c.get("/console/reports")
        assert queue.status_code == 200 and f"#{rid}" in queue.text and "Phản ánh của người dân" in queue.text
        page = c.get(f"/console/reports/{rid}")
        assert (
            page.status_code == 200 and "Trả lời công khai" in page.text and 'data-event="ev005"' in page.text
        )
        assert 'data-event="ev006"' not in page.text
        assert c.get(f"/console/reports/{rid}/photo.jpg").headers["content-type"] == "image/jpeg"
        english = c.get(f"/console/reports/{rid}", params={"lang": "en"})
        assert "Public note (the resident sees it)" in english.text
        token = c.cookies["khupho_csrf"]
        assert (
            c.post(f"/console/reports/{rid}/link", data={"event_id": "ev005"}).status_code == 403
        )  # no CSRF
        r = c.post(
            f"/console/reports/{rid}/link",
            data={"csrf_token": token, "event_id": "ev005"},
            follow_redirects=False,
        )
        assert r.status_code == 303 and parts.store.get("ev005").locked
    views = [r for r in parts.security.audit.records() if r.action == "report.view"]
    assert views and views[0].actor == "op1"
