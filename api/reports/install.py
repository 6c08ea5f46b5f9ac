"""Adds the report routes to the app: Open311 and the resident's pages (public by design, rate-limited),
the staff API (credentials) and the console's report pages (session)."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request, Response

from api.auth.deps import require_principal
from api.auth.security import Security
from api.reports import console, open311, resident, staff
from api.reports.desk import ReportDesk
from api.reports.errors import ReportRefused
from api.reports.store import ReportStore
from events.storage.objects import ObjectStore
from events.storage.store import EventStore


def default_desk(security: Security, store: EventStore, objects: ObjectStore, **kw: Any) -> ReportDesk:
    """A desk on the security database (no face redactor unless given: see ``privacy.blur_faces``)."""
    return ReportDesk(
        ReportStore(security.db),
        audit=security.audit,
        users=security.auth,
        scope=security.scope,
        events=store,
        objects=objects,
        **kw,
    )


def install(app: FastAPI, desk: ReportDesk) -> None:
    app.state.reports = desk

    @app.exception_handler(ReportRefused)
    async def _refused(request: Request, exc: ReportRefused) -> Response:
        # Raised by the per-address limit before a route runs: the standard's error list for Open311,
        # a page with the message for residents.
        if request.url.path.startswith(open311.PREFIX):
            return open311.refused(exc)
        response = resident.page(
            request, "resident_track.html", status=exc.status, report=None, error=exc, code=""
        )
        if exc.retry_after:
            response.headers["Retry-After"] = str(max(1, round(exc.retry_after)))
        return response

    if desk.config.enabled:
        app.include_router(open311.router)  # public by design
        app.include_router(resident.router)  # public by design
    app.include_router(staff.router, dependencies=[Depends(require_principal)])
    app.include_router(console.router)  # pages redirect to the login page without a session
