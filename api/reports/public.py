"""What the public may see of a report, shared by the Open311 routes and the resident's page:
never contact details, internal notes, the assignee or any staff name."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request

from api.reports.desk import ReportDesk
from api.reports.services import SERVICES
from api.reports.store import CLOSED_STATES, Report, Update


def desk_of(request: Request) -> ReportDesk:
    return request.app.state.reports


def local_iso(request: Request, dt: datetime | None) -> str | None:
    if dt is None:
        return None
    tz = ZoneInfo(request.app.state.khupho.traffic_tz)
    return dt.astimezone(tz).isoformat(timespec="seconds")


def open311_status(state: str) -> str:
    return "closed" if state in CLOSED_STATES else "open"


def media_url(request: Request, report: Report) -> str | None:
    if not report.media_name:
        return None
    return str(request.url_for("open311_media", name=report.media_name))


def public_request(request: Request, report: Report, lang: str = "vi") -> dict[str, Any]:
    """One GeoReport v2 service request (the standard's field names), plus ``state`` (the timeline's
    finer status) and ``merged_into``."""
    service = SERVICES.get(report.service_code)
    return {
        "service_request_id": str(report.id),
        "status": open311_status(report.state),
        "status_notes": report.status_notes,
        "service_name": service.name(lang) if service else report.service_code,
        "service_code": report.service_code,
        "description": report.description,
        "agency_responsible": desk_of(request).agency(report),
        "service_notice": None,
        "requested_datetime": local_iso(request, report.created),
        "updated_datetime": local_iso(request, report.updated),
        "expected_datetime": None,
        "address": report.address,
        "address_id": None,
        "zipcode": None,
        "lat": report.lat,
        "long": report.lon,
        "media_url": media_url(request, report),
        "state": report.state,
        "merged_into": str(report.merged_into) if report.merged_into else None,
    }


def public_update(request: Request, update: Update, report: Report | None = None) -> dict[str, Any]:
    """One entry of the ``servicerequestupdates`` extension (as FixMyStreet's Open311 updates)."""
    return {
        "update_id": str(update.id),
        "service_request_id": str(update.report_id),
        "status": open311_status(update.state),
        "state": update.state,
        "kind": update.kind,
        "updated_datetime": local_iso(request, update.time),
        "description": update.public_note or "",
        "media_url": None,
    }
