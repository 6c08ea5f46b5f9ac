"""The resident's pages (public, Vietnamese first, phone first): file a report with a photo, get the
tracking code, follow the public timeline by code, reopen a resolved report within 14 days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse

from api.auth.deps import client_address
from api.console.pages import render
from api.reports.errors import ReportRefused
from api.reports.open311 import limit_address, read_submission
from api.reports.public import desk_of, media_url
from api.reports.services import SERVICES
from api.reports.store import Report
from api.reports.text import normalise_code

router = APIRouter(include_in_schema=False, dependencies=[Depends(limit_address)])


def page(request: Request, name: str, status: int = 200, **data: Any) -> Response:
    """A resident page; its language link keeps the query (the tracking code) and flips ``lang``."""
    current = request.query_params.get("lang") or request.cookies.get("khupho_lang") or "vi"
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
    query.append(("lang", "vi" if current == "en" else "en"))
    response = render(request, name, None, status=status, lang_query=urlencode(query), **data)
    # The "use my location" button asks the phone for its position on this site only.
    response.headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(self)"
    return response


def _form_page(
    request: Request, status: int = 200, error: ReportRefused | None = None, **data: Any
) -> Response:
    desk = desk_of(request)
    response = page(
        request,
        "resident_new.html",
        status=status,
        services=list(SERVICES.values()),
        places=desk.scope.khu_pho,
        error=error,
        max_mb=desk.config.max_photo_mb,
        max_chars=desk.config.max_description,
        form=data.get("form", {}),
    )
    if error is not None and error.retry_after:
        response.headers["Retry-After"] = str(max(1, round(error.retry_after)))
    return response


@router.get("/phan-anh")
def new_report_page(request: Request) -> Response:
    return _form_page(request)


@router.post("/phan-anh")
async def new_report(request: Request) -> Response:
    try:
        submission = await read_submission(request)
        report, code = await run_in_threadpool(  # off the event loop: the photo takes up to a second
            desk_of(request).submit, submission, address=client_address(request)
        )
    except ReportRefused as exc:
        # Keep what was typed (not after a 413: that body is not read at all).
        form = await request.form() if exc.status != 413 else {}
        kept = {k: v for k, v in form.items() if isinstance(v, str) and k != "media"}
        return _form_page(request, status=exc.status, error=exc, form=kept)
    # The code is shown once, here: only its hash is stored, so nobody can show it again.
    return page(
        request, "resident_filed.html", report=report, code=code, agency=desk_of(request).agency(report)
    )


def _timeline(request: Request, report: Report) -> list[Any]:
    return desk_of(request).store.updates(report.id, public_only=True)


@router.get("/phan-anh/theo-doi")
def track_page(request: Request, ma: Annotated[str, Query(max_length=64)] = "") -> Response:
    desk = desk_of(request)
    if not ma:
        return page(request, "resident_track.html", report=None, error=None, code="")
    try:
        report = desk.track(ma, address=client_address(request))
    except ReportRefused as exc:
        return page(request, "resident_track.html", status=exc.status, report=None, error=exc, code=ma)
    closed = report.closed
    reopen_until = None
    if report.state == "resolved" and closed is not None:
        deadline = closed + timedelta(days=desk.config.reopen_days)
        reopen_until = deadline if deadline > datetime.now(UTC) else None
    return page(
        request,
        "resident_track.html",
        report=report,
        code=normalise_code(ma) or ma,
        error=None,
        service=SERVICES.get(report.service_code),
        agency=desk.agency(report),
        updates=_timeline(request, report),
        photo=media_url(request, report),
        reopen_until=reopen_until,
    )


@router.post("/phan-anh/mo-lai")
def reopen(
    request: Request,
    ma: Annotated[str, Form(max_length=64)],
    note: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    desk = desk_of(request)
    try:
        desk.reopen(ma, note, address=client_address(request))
    except ReportRefused as exc:
        return page(request, "resident_track.html", status=exc.status, report=None, error=exc, code=ma)
    return RedirectResponse(f"/phan-anh/theo-doi?{urlencode({'ma': ma})}", status_code=303)
