"""``/reports``: the staff API over residents' reports (credentials required, limited to the caller's
khu phố: another khu phố's report is a 404). The console's report pages call the same desk."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from api.auth.deps import Caller, client_address
from api.auth.principal import Principal
from api.reports.desk import STAFF_ACTIONS, ReportDesk
from api.reports.errors import ReportRefused
from api.reports.public import desk_of
from api.reports.store import STATES, Report

router = APIRouter(tags=["reports"])
NOT_FOUND = {404: {"description": "Unknown report"}}


class ReportOut(BaseModel):
    id: int
    service_code: str
    description: str
    lat: float | None
    long: float | None
    address: str | None
    khu_pho: str | None
    ward: str | None
    agency: str
    state: str
    status_notes: str | None
    assignee: str | None
    contact_name: str | None
    contact_email: str | None
    contact_phone: str | None
    attributes: dict[str, str]
    has_photo: bool
    hidden: bool
    merged_into: int | None
    created: datetime
    updated: datetime
    closed: datetime | None


class UpdateOut(BaseModel):
    id: int
    time: datetime
    kind: str
    state: str
    public: bool
    public_note: str | None
    internal_note: str | None
    actor: str


class EvidenceOut(BaseModel):
    event_id: str
    time: datetime
    linked_by: str


class ReportDetail(ReportOut):
    updates: list[UpdateOut]
    evidence: list[EvidenceOut]


class ActionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal[
        "route", "category", "assign", "start", "resolve", "reject",
        "merge", "note", "hide", "unhide", "reopen",
    ]  # fmt: skip
    public_note: Annotated[str | None, Field(max_length=2000)] = None
    internal_note: Annotated[str | None, Field(max_length=2000)] = None
    khu_pho: Annotated[str | None, Field(max_length=64)] = None
    service_code: Annotated[str | None, Field(max_length=64)] = None
    username: Annotated[str | None, Field(max_length=64)] = None
    into: Annotated[str | None, Field(max_length=20)] = None


class EvidenceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event_id: Annotated[str, Field(min_length=1, max_length=128)]


def report_out(desk: ReportDesk, r: Report) -> ReportOut:
    return ReportOut(
        id=r.id, service_code=r.service_code, description=r.description, lat=r.lat, long=r.lon,
        address=r.address, khu_pho=r.khu_pho, ward=r.ward, agency=desk.agency(r), state=r.state,
        status_notes=r.status_notes, assignee=r.assignee, contact_name=r.contact_name,
        contact_email=r.contact_email, contact_phone=r.contact_phone, attributes=r.attributes,
        has_photo=bool(r.media_key), hidden=r.hidden, merged_into=r.merged_into, created=r.created,
        updated=r.updated, closed=r.closed,
    )  # fmt: skip


def http_error(exc: ReportRefused) -> HTTPException:
    return HTTPException(status_code=exc.status, detail=exc.message)


def visible_report(desk: ReportDesk, principal: Principal, report_id: str) -> Report:
    report = desk.visible(principal, report_id)
    if report is None:
        raise HTTPException(status_code=404, detail="unknown report")
    return report


def report_detail(desk: ReportDesk, report: Report) -> ReportDetail:
    return ReportDetail(
        **report_out(desk, report).model_dump(),
        updates=[
            UpdateOut.model_validate(u, from_attributes=True)
            for u in desk.store.updates(report.id, public_only=False)
        ],
        evidence=[
            EvidenceOut.model_validate(e, from_attributes=True) for e in desk.store.evidence(report.id)
        ],
    )


@router.get("/reports", response_model=list[ReportOut])
def list_reports(
    request: Request,
    principal: Caller,
    state: Annotated[list[Literal[STATES]] | None, Query()] = None,  # type: ignore[valid-type]
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[ReportOut]:
    """Reports of the caller's khu phố (supervisors: also the ward queue), newest first, hidden ones too."""
    desk = desk_of(request)
    return [report_out(desk, r) for r in desk.queue(principal, states=state, limit=limit, offset=offset)]


@router.get("/reports/{report_id}", response_model=ReportDetail, responses=NOT_FOUND)
def get_report(report_id: str, request: Request, principal: Caller) -> ReportDetail:
    """One report with its whole history (internal notes and who did what) and its evidence; the
    view is audited (it shows the resident's contact details)."""
    desk = desk_of(request)
    report = visible_report(desk, principal, report_id)
    desk.audit.record(principal.name, "report.view", str(report.id), address=client_address(request))
    return report_detail(desk, report)


@router.post(
    "/reports/{report_id}/actions",
    response_model=ReportDetail,
    responses={**NOT_FOUND, 400: {}, 403: {}, 409: {}},
)
def report_action(report_id: str, body: ActionBody, request: Request, principal: Caller) -> ReportDetail:
    """Triage and answers: route, category, assign, start, resolve, reject, merge, note, (un)hide, reopen."""
    desk = desk_of(request)
    visible_report(desk, principal, report_id)
    args: dict[str, Any] = body.model_dump(exclude={"action"}, exclude_none=True)
    try:
        report = desk.act(principal, report_id, body.action, address=client_address(request), **args)
    except ReportRefused as exc:
        raise http_error(exc) from None
    return report_detail(desk, report)


@router.post(
    "/reports/{report_id}/evidence", response_model=ReportDetail, responses={**NOT_FOUND, 400: {}, 403: {}}
)
def link_evidence(report_id: str, body: EvidenceBody, request: Request, principal: Caller) -> ReportDetail:
    """Link a camera event as evidence: it is kept (exempt from retention) until the report has been
    closed for ``reports.evidence_keep_days``."""
    desk = desk_of(request)
    visible_report(desk, principal, report_id)
    try:
        report = desk.link_evidence(principal, report_id, body.event_id, address=client_address(request))
    except ReportRefused as exc:
        raise http_error(exc) from None
    return report_detail(desk, report)


__all__ = ["STAFF_ACTIONS", "router"]
