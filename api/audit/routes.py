"""``/audit``: administrators read and export the audit log; there is no route that changes it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from api.auth.deps import Admin, Sec, client_address

router = APIRouter(tags=["audit"])


class AuditRow(BaseModel):
    seq: int
    time: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]
    address: str
    hash: str


class AuditPage(BaseModel):
    items: list[AuditRow]
    next_before: int | None  # pass as ``before`` for older rows


@router.get("/audit", response_model=AuditPage)
def read_audit(
    admin: Admin,
    security: Sec,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AuditPage:
    """Newest first."""
    rows = security.audit.records(before=before, limit=limit, action=action, actor=actor)
    items = [AuditRow.model_validate(r, from_attributes=True) for r in rows]
    return AuditPage(items=items, next_before=items[-1].seq if len(items) == limit else None)


@router.get("/audit.csv", response_class=StreamingResponse, responses={200: {"content": {"text/csv": {}}}})
def export_audit(request: Request, admin: Admin, security: Sec) -> StreamingResponse:
    """The whole log as CSV, oldest first (the export itself is logged)."""
    security.audit.record(admin.name, "audit.export", "", address=client_address(request))
    return StreamingResponse(
        security.audit.to_csv(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="khupho-audit.csv"'},
    )
