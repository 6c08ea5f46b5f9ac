"""Open311 GeoReport v2: the standard's field names and status values, public fields only, filters,
the updates extension, and a clear error for every refusal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from api.auth import Role
from api.reports import ReportDesk
from tests.api.reports.support import OPEN311, REQUEST_FIELDS, file_report, make_desk
from tests.api.support import PASSWORD, Parts, login

CONTACT = {"email": "an.nguyen@example.vn", "phone": "0901 234 567", "first_name": "Nguyễn Văn An"}


def test_services_have_vietnamese_and_english_names_and_attributes(public: TestClient) -> None:
    services = public.get(f"{OPEN311}/services.json").json()
    assert [s["service_code"] for s in services] == ["security", "environment", "traffic"]
    for s in services:
        assert {
            "service_code",
            "service_name",
            "description",
            "metadata",
            "type",
            "keywords",
            "group",
        } <= set(s)
        assert s["type"] in ("realtime", "batch", "blackbox") and isinstance(s["metadata"], bool)
    assert services[0]["service_name"] == "An ninh trật tự"
    english = public.get(f"{OPEN311}/services.json", params={"lang": "en"}).json()
    assert english[0]["service_name"] == "Security and public order"
    definition = public.get(f"{OPEN311}/services/security.json").json()
    attr = definition["attributes"][0]
    assert definition["service_code"] == "security"
    assert {
        "variable",
        "code",
        "datatype",
        "required",
        "datatype_description",
        "order",
        "description",
        "values",
    } <= set(attr)
    assert [v["key"] for v in attr["values"]] == ["now", "past"]
    r = public.get(f"{OPEN311}/services/nope.json")
    assert r.status_code == 404 and r.json()[0]["code"] == 404


def test_a_request_is_filed_and_read_back_with_public_fields_only(public: TestClient) -> None:
    r = file_report(public, **CONTACT, **{"attribute[when]": "now", "lat": "10.7769", "long": "106.7009"})
    assert r.status_code == 201, r.text
    (created,) = r.json()
    rid, token = created["service_request_id"], created["token"]
    assert rid.isdigit() and len(token) == 24 and token.count("-") == 4
    assert created["service_notice"] == "Khu phố 1"
    (req,) = public.get(f"{OPEN311}/requests/{rid}.json").json()
    assert set(req) >= REQUEST_FIELDS
    assert req["status"] == "open" and req["state"] == "assigned"
    assert req["agency_responsible"] == "Khu phố 1" and req["service_name"] == "An ninh trật tự"
    assert req["lat"] == 10.7769 and req["long"] == 106.7009 and req["address"] == "12 Lê Lợi"
    assert req["requested_datetime"].endswith("+00:00") and req["media_url"] is None
    # Contact details never leave the staff side.
    for url in (
        f"{OPEN311}/requests/{rid}.json",
        f"{OPEN311}/requests.json",
        f"{OPEN311}/servicerequestupdates.json",
    ):
        text = public.get(url).text
        for secret in ("an.nguyen", "0901", "901234567", "Nguyễn Văn An", token):
            assert secret not in text, (url, secret)
    assert public.get(f"{OPEN311}/tokens/{token}.json").json() == [
        {"service_request_id": rid, "token": token}
    ]
    assert public.get(f"{OPEN311}/tokens/{token.lower().replace('-', '')}.json").status_code == 200
    assert public.get(f"{OPEN311}/requests/999999.json").status_code == 404
    assert public.get(f"{OPEN311}/requests/abc.json").json() == [
        {"code": 404, "description": "no such service request", "error": "not_found"}
    ]


def test_list_filters_and_limits(parts: Parts, public: TestClient) -> None:
    ids = [
        file_report(public, service_code=code).json()[0]["service_request_id"]
        for code in ("security", "traffic", "environment")
    ]
    parts.security.auth.add_user("op1", PASSWORD, Role.OPERATOR, ["kp1"])
    with TestClient(public.app) as staff:
        login(staff, "op1", PASSWORD)
        r = staff.post(
            f"/reports/{ids[1]}/actions", json={"action": "resolve", "public_note": "Đã phân luồng"}
        )
        assert r.status_code == 200, r.text
    every = public.get(f"{OPEN311}/requests.json").json()
    assert [x["service_request_id"] for x in every] == ids[::-1]  # newest first
    assert [
        x["service_request_id"]
        for x in public.get(f"{OPEN311}/requests.json", params={"status": "closed"}).json()
    ] == [ids[1]]
    assert len(public.get(f"{OPEN311}/requests.json", params={"status": "open"}).json()) == 2
    assert len(public.get(f"{OPEN311}/requests.json", params={"status": "open,closed"}).json()) == 3
    only = public.get(f"{OPEN311}/requests.json", params={"service_code": "traffic,environment"}).json()
    assert {x["service_code"] for x in only} == {"traffic", "environment"}
    picked = public.get(
        f"{OPEN311}/requests.json", params={"service_request_id": f"{ids[0]},{ids[2]}"}
    ).json()
    assert sorted(x["service_request_id"] for x in picked) == sorted([ids[0], ids[2]])
    closed = next(x for x in every if x["service_request_id"] == ids[1])
    assert closed["status"] == "closed" and closed["status_notes"] == "Đã phân luồng"
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert public.get(f"{OPEN311}/requests.json", params={"start_date": future}).json() == []
    assert len(public.get(f"{OPEN311}/requests.json", params={"end_date": future}).json()) == 3
    assert len(public.get(f"{OPEN311}/requests.json", params={"page_size": 2}).json()) == 2
    assert len(public.get(f"{OPEN311}/requests.json", params={"page_size": 2, "page": 2}).json()) == 1
    for bad in ({"status": "fixed"}, {"start_date": "yesterday"}, {"service_request_id": "1;drop"}):
        r = public.get(f"{OPEN311}/requests.json", params=bad)
        assert r.status_code == 400 and r.json()[0]["code"] == 400, bad


def test_updates_show_public_notes_never_internal_ones_or_staff(parts: Parts, public: TestClient) -> None:
    rid = file_report(public).json()[0]["service_request_id"]
    parts.security.auth.add_user("op.binh", PASSWORD, Role.OPERATOR, ["kp1"])
    with TestClient(public.app) as staff:
        login(staff, "op.binh", PASSWORD)
        for body in (
            {"action": "assign", "username": "op.binh"},
            {"action": "start", "internal_note": "gọi anh Tư tổ trưởng"},
            {
                "action": "resolve",
                "public_note": "Công an phường đã tuần tra",
                "internal_note": "nghi phạm quen mặt",
            },
        ):
            assert staff.post(f"/reports/{rid}/actions", json=body).status_code == 200
    feed = public.get(f"{OPEN311}/servicerequestupdates.json", params={"service_request_id": rid}).json()
    updates = feed["service_request_updates"]
    assert [u["state"] for u in updates] == ["received", "assigned", "in_progress", "resolved"]
    assert [u["status"] for u in updates] == ["open", "open", "open", "closed"]
    for u in updates:
        assert {"update_id", "service_request_id", "status", "updated_datetime", "description"} <= set(u)
    assert updates[-1]["description"] == "Công an phường đã tuần tra"
    text = (
        public.get(f"{OPEN311}/servicerequestupdates.json").text + public.get(f"{OPEN311}/requests.json").text
    )
    for secret in ("anh Tư", "nghi phạm", "op.binh"):
        assert secret not in text


def test_each_refusal_has_a_clear_error(public: TestClient) -> None:
    cases = {
        "unknown_service": {"service_code": "parking"},
        "too_long": {"description": "x" * 4001},
        "missing_field": {"description": "   "},
        "missing_location": {"address_string": "", "khu_pho": ""},
        "bad_location": {"lat": "91", "long": "106"},
        "bad_text": {"description": "spam\x00\x07here"},
        "bad_email": {"email": "not-an-address"},
        "bad_phone": {"phone": "12"},
        "unknown_khu_pho": {"khu_pho": "kp99"},
        "bad_attribute": {"attribute[when]": "tomorrow"},
    }
    for kind, fields in cases.items():
        r = file_report(public, **fields)
        assert r.status_code == 400, (kind, r.text)
        (err,) = r.json()
        assert err["code"] == 400 and err["error"] == kind and err["description"], (kind, err)
    assert file_report(public, description="x" * 4000).status_code == 201  # the limit itself is fine
    # Bytes that are not UTF-8 (a form sent in another encoding).
    raw = public.post(
        f"{OPEN311}/requests.json",
        content=b"service_code=security&address_string=x&description=%C3%28%FF",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert raw.status_code == 400 and raw.json()[0]["error"] == "bad_encoding", raw.text
    nothing = public.post(f"{OPEN311}/requests.json")
    assert nothing.status_code == 400 and nothing.json()[0]["error"] == "unknown_service"


def test_rate_limits_per_address_and_per_token(parts: Parts, models_dir) -> None:  # type: ignore[no-untyped-def]
    desk = make_desk(parts, submits_per_hour=2, token_uses_per_hour=3, requests_per_minute=12)
    with TestClient(parts.app(reports=desk)) as c:
        codes = [file_report(c).json()[0]["token"] for _ in range(2)]
        third = file_report(c)
        assert third.status_code == 429 and third.json()[0]["error"] == "rate_limited"
        assert 3000 < int(third.headers["Retry-After"]) <= 3600
        for _ in range(3):
            assert c.get(f"{OPEN311}/tokens/{codes[0]}.json").status_code == 200
        r = c.get(f"{OPEN311}/tokens/{codes[0]}.json")
        assert r.status_code == 429 and "code was used too often" in r.json()[0]["description"]
        assert c.get(f"{OPEN311}/tokens/{codes[1]}.json").status_code == 200  # another code is not affected
        # Every public route counts against the address: 12 a minute here (8 used so far).
        statuses = [c.get(f"{OPEN311}/services.json").status_code for _ in range(6)]
        assert statuses == [200, 200, 200, 200, 429, 429]
        page = c.get("/phan-anh")
        assert page.status_code == 429 and "Retry-After" in page.headers and "thử lại" in page.text
    assert desk.store.search() and len(desk.store.search()) == 2


def test_open_reports_per_contact(parts: Parts) -> None:
    desk = make_desk(parts, max_open_per_contact=2)
    with TestClient(parts.app(reports=desk)) as c:
        assert file_report(c, phone="0901234567").status_code == 201
        assert file_report(c, phone="+84 901 234 567").status_code == 201  # the same number
        r = file_report(c, phone="090-123-4567")
        assert r.status_code == 429 and r.json()[0]["error"] == "too_many_open"
        assert file_report(c, phone="0907654321").status_code == 201
        assert file_report(c, email="An@Example.vn").status_code == 201


def test_hidden_spam_leaves_public_view_but_not_the_audit_trail(
    parts: Parts, public: TestClient, desk: ReportDesk
) -> None:
    rid = file_report(public, description="Mua bán sim số đẹp giá rẻ liên hệ ngay").json()[0][
        "service_request_id"
    ]
    parts.security.auth.add_user("op1", PASSWORD, Role.OPERATOR, ["kp1"])
    with TestClient(public.app) as staff:
        login(staff, "op1", PASSWORD)
        assert (
            staff.post(
                f"/reports/{rid}/actions", json={"action": "hide", "internal_note": "spam"}
            ).status_code
            == 200
        )
        assert staff.get(f"/reports/{rid}").json()["hidden"] is True  # staff still see it
    assert public.get(f"{OPEN311}/requests/{rid}.json").status_code == 404
    assert public.get(f"{OPEN311}/requests.json").json() == []
    actions = [(r.actor, r.action, r.target) for r in parts.security.audit.records()]
    assert ("resident", "report.submit", rid) in actions and ("op1", "report.hide", rid) in actions
    assert parts.security.audit.verify().ok


def test_ids_that_are_not_ascii_digits_are_refused_not_crashed(public: TestClient, parts: Parts) -> None:
    # Found in review: "²".isdigit() is True but int("²") fails.
    assert public.get(f"{OPEN311}/requests/².json").status_code == 404
    assert public.get(f"{OPEN311}/requests.json", params={"service_request_id": "1,²"}).status_code == 400
    assert (
        public.get(f"{OPEN311}/servicerequestupdates.json", params={"service_request_id": "٣"}).status_code
        == 400
    )
    with TestClient(public.app) as admin:
        login(admin)
        assert admin.get("/reports/²").status_code == 404 and admin.get("/reports/１").status_code == 404
