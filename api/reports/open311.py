"""Open311 GeoReport v2 (JSON) under ``/open311/v2/``: public by design, rate-limited per address.

Errors use the standard's shape, a list of ``{"code": HTTP status, "description": ...}``.
Extension: ``servicerequestupdates.json`` (a report's public timeline, as FixMyStreet publishes it)
and ``media/{name}.jpg`` (the resident's photo: re-encoded, without EXIF, faces blurred).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, StreamingResponse

from api.auth.deps import client_address
from api.reports.desk import Submission
from api.reports.errors import ReportRefused
from api.reports.public import desk_of, public_request, public_update
from api.reports.services import SERVICES
from api.reports.store import CLOSED_STATES, OPEN_STATES
from events.storage.objects import ObjectNotFound

PREFIX = "/open311/v2"
_ID = re.compile(r"[0-9]{1,17}")  # ASCII digits only: str.isdigit() also takes "²", which int() refuses
MAX_PAGE = 1000
DEFAULT_WINDOW = timedelta(days=90)
FORM_OVERHEAD = 64 * 1024  # bytes a form may carry beyond its photo


def limit_address(request: Request) -> None:
    desk_of(request).check_address(client_address(request))


router = APIRouter(prefix=PREFIX, tags=["open311"], dependencies=[Depends(limit_address)])
Lang = Annotated[str, Query(pattern="^(vi|en)$", description="language of names: vi (default) or en")]


def refused(exc: ReportRefused) -> JSONResponse:
    headers = {"Retry-After": str(max(1, round(exc.retry_after)))} if exc.retry_after else None
    return JSONResponse(
        status_code=exc.status,
        content=[{"code": exc.status, "description": exc.message, "error": exc.kind}],
        headers=headers,
    )


def _service(s: Any, lang: str) -> dict[str, Any]:
    return {
        "service_code": s.code,
        "service_name": s.name(lang),
        "description": s.description(lang),
        "metadata": bool(s.attributes),
        "type": "realtime",
        "keywords": ", ".join(s.keywords),
        "group": "khupho",
        "service_name_vi": s.name_vi,
        "service_name_en": s.name_en,
    }


@router.get("/services.json")
def list_services(lang: Lang = "vi") -> list[dict[str, Any]]:
    """The report categories, with Vietnamese and English names."""
    return [_service(s, lang) for s in SERVICES.values()]


@router.get("/services/{service_code}.json", responses={404: {}})
def service_definition(service_code: str, lang: Lang = "vi") -> Any:
    """A category's attributes (``attribute[code]`` in a request)."""
    service = SERVICES.get(service_code)
    if service is None:
        return refused(ReportRefused("unknown_service", "unknown service_code", 404))
    return {
        "service_code": service.code,
        "attributes": [
            {
                "variable": True,
                "code": a.code,
                "datatype": a.datatype,
                "required": a.required,
                "datatype_description": None,
                "order": i + 1,
                "description": a.description_en if lang == "en" else a.description_vi,
                "values": [{"key": k, "name": en if lang == "en" else vi} for k, vi, en in a.values],
            }
            for i, a in enumerate(service.attributes)
        ],
    }


async def read_submission(request: Request) -> Submission:
    """The standard's form fields (urlencoded, or multipart with a ``media`` file)."""
    desk = desk_of(request)
    max_photo = int(desk.config.max_photo_mb * 1_000_000)
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > max_photo + FORM_OVERHEAD):
        raise ReportRefused("photo_too_large", f"the request is larger than {max_photo / 1e6:.0f} MB", 413)
    try:
        form = await request.form(max_files=1, max_fields=40)
    except Exception as exc:  # a malformed body of any kind
        raise ReportRefused(
            "bad_form", "send the fields form-encoded (or multipart with media)", 400
        ) from exc
    photo = None
    upload = form.get("media")
    if upload is not None and not isinstance(upload, str):
        photo = await upload.read(max_photo + 1)
        if len(photo) > max_photo:
            raise ReportRefused("photo_too_large", f"the photo is larger than {max_photo / 1e6:.0f} MB", 413)

    def field(name: str) -> str | None:
        value = form.get(name)
        return value if isinstance(value, str) else None

    attributes = {
        k[len("attribute[") : -1]: v
        for k, v in form.multi_items()
        if k.startswith("attribute[") and k.endswith("]") and isinstance(v, str)
    }
    return Submission(
        service_code=field("service_code") or "",
        description=field("description") or "",
        lat=field("lat"),
        long=field("long"),
        address_string=field("address_string"),
        khu_pho=field("khu_pho"),
        email=field("email"),
        phone=field("phone"),
        first_name=field("first_name"),
        last_name=field("last_name"),
        attributes=attributes,
        photo=photo or None,
    )


@router.post(
    "/requests.json",
    status_code=201,
    responses={400: {}, 413: {}, 429: {}},
    openapi_extra={
        "requestBody": {
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "required": ["service_code", "description"],
                        "properties": {
                            "service_code": {"type": "string"},
                            "description": {"type": "string", "maxLength": 4000},
                            "lat": {"type": "number"},
                            "long": {"type": "number"},
                            "address_string": {"type": "string"},
                            "email": {"type": "string"},
                            "phone": {"type": "string"},
                            "first_name": {"type": "string"},
                            "last_name": {"type": "string"},
                        },
                    }
                },
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"media": {"type": "string", "format": "binary"}},
                    }
                },
            }
        }
    },
)
async def create_request(request: Request) -> Any:
    """File a report: returns ``service_request_id`` and the tracking ``token`` (shown once: keep it)."""
    try:
        submission = await read_submission(request)
        # Off the event loop: decoding, face detection and re-encoding a photo take up to a second.
        report, code = await run_in_threadpool(
            desk_of(request).submit, submission, address=client_address(request)
        )
    except ReportRefused as exc:
        return refused(exc)
    return JSONResponse(
        status_code=201,
        content=[
            {
                "service_request_id": str(report.id),
                "token": code,
                "service_notice": desk_of(request).agency(report) or None,
                "account_id": None,
            }
        ],
    )


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _when(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ReportRefused("bad_date", f"{name} must be an ISO 8601 time (W3C format)", 400) from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@router.get("/requests.json", responses={400: {}, 429: {}})
def list_requests(
    request: Request,
    service_request_id: Annotated[str | None, Query(max_length=2000)] = None,
    service_code: Annotated[str | None, Query(max_length=500)] = None,
    start_date: Annotated[str | None, Query(max_length=40)] = None,
    end_date: Annotated[str | None, Query(max_length=40)] = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE)] = MAX_PAGE,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    lang: Lang = "vi",
) -> Any:
    """Public requests, newest first. Without ids or dates: the last 90 days; at most 1000 a page."""
    try:
        ids = _csv(service_request_id)
        if ids is not None and not all(_ID.fullmatch(i) for i in ids):
            raise ReportRefused("bad_id", "service_request_id is a comma-separated list of ids", 400)
        states: list[str] | None = None
        for s in _csv(status) or []:
            if s not in ("open", "closed"):
                raise ReportRefused("bad_status", "status is open, closed or both", 400)
            states = [*(states or []), *(OPEN_STATES if s == "open" else CLOSED_STATES)]
        since, until = _when(start_date, "start_date"), _when(end_date, "end_date")
        if ids is None and since is None and until is None:
            since = datetime.now(UTC) - DEFAULT_WINDOW
        reports = desk_of(request).store.search(
            ids=[int(i) for i in ids] if ids is not None else None,
            service_codes=_csv(service_code),
            states=states,
            since=since,
            until=until,
            limit=page_size,
            offset=(page - 1) * page_size,
        )
    except ReportRefused as exc:
        return refused(exc)
    return [public_request(request, r, lang) for r in reports]


@router.get("/requests/{service_request_id}.json", responses={404: {}})
def get_request(request: Request, service_request_id: str, lang: Lang = "vi") -> Any:
    report = None
    if _ID.fullmatch(service_request_id):
        report = desk_of(request).store.get(int(service_request_id))
    if report is None or report.hidden:
        return refused(ReportRefused("not_found", "no such service request", 404))
    return [public_request(request, report, lang)]


@router.get("/tokens/{token}.json", responses={404: {}, 429: {}})
def get_token(request: Request, token: str) -> Any:
    """The request id of a tracking token."""
    try:
        report = desk_of(request).track(token[:64], address=client_address(request))
    except ReportRefused as exc:
        return refused(exc)
    return [{"service_request_id": str(report.id), "token": token}]


@router.get("/servicerequestupdates.json", responses={400: {}})
def list_updates(
    request: Request,
    start_date: Annotated[str | None, Query(max_length=40)] = None,
    end_date: Annotated[str | None, Query(max_length=40)] = None,
    service_request_id: Annotated[str | None, Query(max_length=2000)] = None,
) -> Any:
    """Public updates (status changes and public notes), oldest first; the last 90 days by default."""
    try:
        since, until = _when(start_date, "start_date"), _when(end_date, "end_date")
        ids = _csv(service_request_id)
        if ids is not None and not all(_ID.fullmatch(i) for i in ids):
            raise ReportRefused("bad_id", "service_request_id is a comma-separated list of ids", 400)
        if since is None and ids is None:
            since = datetime.now(UTC) - DEFAULT_WINDOW
        updates = desk_of(request).store.public_updates(
            since=since, until=until, report_ids=[int(i) for i in ids] if ids else None, limit=MAX_PAGE
        )
    except ReportRefused as exc:
        return refused(exc)
    return {"service_request_updates": [public_update(request, u) for u in updates]}


@router.get(
    "/media/{name}.jpg",
    name="open311_media",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {}},
)
def get_media(request: Request, name: str) -> Response:
    """A report's photo as stored: re-encoded, without EXIF, faces blurred."""
    desk = desk_of(request)
    report = desk.store.by_media(name[:64]) if name.isalnum() else None
    if report is None or report.hidden or not report.media_key:
        return refused(ReportRefused("not_found", "no such photo", 404))
    url = desk.objects.presigned_url(report.media_key, timedelta(minutes=10))
    if url is not None:
        return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
    try:
        chunks = desk.objects.open(report.media_key)
    except ObjectNotFound:
        return refused(ReportRefused("not_found", "the photo is still being stored", 404))
    return StreamingResponse(
        chunks, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"}
    )
