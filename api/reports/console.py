"""The console's report pages: the queue per khu phố, one report with its history, actions and
camera evidence. Forms carry the session's CSRF token (checked in ``api.auth.deps``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse

from api.auth.deps import client_address
from api.auth.principal import Role
from api.console.pages import MaybePrincipal, _user_page, render
from api.reports.errors import ReportRefused
from api.reports.public import desk_of
from api.reports.services import SERVICES
from api.reports.store import STATES
from events.storage.objects import ObjectNotFound
from events.storage.store import EventFilters

router = APIRouter(include_in_schema=False)
NEARBY = timedelta(hours=3)  # camera events this close to the report's time are offered as evidence


@router.get("/console/reports")
def queue_page(
    request: Request,
    principal: MaybePrincipal,
    state: Annotated[str | None, Query(max_length=20)] = None,
    khu_pho: Annotated[str | None, Query(max_length=64)] = None,
    hidden: Annotated[str | None, Query(max_length=3)] = None,
) -> Response:
    me = _user_page(request, principal)
    desk = desk_of(request)
    reports = desk.queue(me, states=[state] if state in STATES else None, limit=200)
    if khu_pho == "-":
        reports = [r for r in reports if r.khu_pho is None]
    elif khu_pho:
        reports = [r for r in reports if r.khu_pho == khu_pho]
    if hidden != "on":
        reports = [r for r in reports if not r.hidden]
    kp, _ = desk.places_for(me)
    places = {k: c.name for k, c in desk.scope.khu_pho.items() if kp is None or k in kp}
    return render(
        request,
        "reports.html",
        me,
        reports=reports,
        places=places,
        states=STATES,
        services=SERVICES,
        agency=desk.agency,
        filters={"state": state, "khu_pho": khu_pho, "hidden": hidden == "on"},
    )


@router.get("/console/reports/{report_id}")
def report_page(request: Request, report_id: str, principal: MaybePrincipal) -> Response:
    me = _user_page(request, principal)
    desk = desk_of(request)
    report = desk.visible(me, report_id)
    if report is None:
        return render(request, "error.html", me, status=404, message="not_found")
    desk.audit.record(me.name, "report.view", str(report.id), address=client_address(request))
    ctx = request.app.state.khupho
    security = request.app.state.security
    linked = [e for e in (ctx.store.get(x.event_id) for x in desk.store.evidence(report.id)) if e is not None]
    # Events of the report's khu phố (cameras the caller may see) near the time it was filed.
    allowed = security.scope.cameras_for(me)
    cameras = [
        c for c, kp in security.scope.camera_khu_pho.items()
        if (report.khu_pho is None or kp == report.khu_pho) and (allowed is None or c in allowed)
    ]  # fmt: skip
    nearby = []
    for cam in cameras[:20]:
        events, _ = ctx.store.list_events(
            EventFilters(camera=cam, since=report.created - NEARBY, until=report.created + NEARBY), limit=10
        )
        nearby += events
    linked_ids = {e.id for e in linked}
    nearby = sorted((e for e in nearby if e.id not in linked_ids), key=lambda e: e.start_time, reverse=True)[
        :12
    ]
    users = [
        u for u in security.auth.users()
        if not u.disabled and u.role is not Role.VIEWER and desk.user_may_handle(u.role, u.scopes, report)
    ]  # fmt: skip
    return render(
        request,
        "report.html",
        me,
        report=report,
        service=SERVICES.get(report.service_code),
        services=SERVICES,
        agency=desk.agency(report),
        updates=desk.store.updates(report.id, public_only=False),
        linked=linked,
        nearby=nearby,
        users=users,
        places={k: c.name for k, c in desk.scope.khu_pho.items()},
    )


@router.get("/console/reports/{report_id}/photo.jpg")
def report_photo(request: Request, report_id: str, principal: MaybePrincipal) -> Response:
    """The stored photo (faces blurred), for staff even when the report is hidden from the public."""
    me = _user_page(request, principal)
    desk = desk_of(request)
    report = desk.visible(me, report_id)
    if report is None or not report.media_key:
        return Response(status_code=404)
    url = desk.objects.presigned_url(report.media_key, timedelta(minutes=10))
    if url is not None:
        return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
    try:
        chunks = desk.objects.open(report.media_key)
    except ObjectNotFound:
        return Response(status_code=404)
    return StreamingResponse(chunks, media_type="image/jpeg", headers={"Cache-Control": "private, no-cache"})


@router.post("/console/reports/{report_id}/{action}")
async def report_form(request: Request, report_id: str, action: str, principal: MaybePrincipal) -> Response:
    me = _user_page(request, principal)
    desk = desk_of(request)
    form = await request.form()
    args = {k: str(v)[:2000] for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
    address = client_address(request)
    try:
        if action == "link":
            desk.link_evidence(me, report_id, args.get("event_id", ""), address=address)
        elif action == "unlink":
            desk.unlink_evidence(me, report_id, args.get("event_id", ""), address=address)
        else:
            desk.act(me, report_id, action, address=address, **args)
    except ReportRefused as exc:
        message = "not_found" if exc.status == 404 else "view_only" if exc.status == 403 else exc.message
        return render(request, "error.html", me, status=exc.status, message=message)
    return RedirectResponse(f"/console/reports/{report_id}", status_code=303)
