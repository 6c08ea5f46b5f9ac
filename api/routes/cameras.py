"""Camera status, from the provider ingest wires in."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from api.auth.deps import Caller, Sec
from api.context import Ctx
from api.schemas import CameraStatus

router = APIRouter(tags=["cameras"])


def _statuses(ctx: Ctx, principal: Caller, security: Sec) -> list[CameraStatus]:
    allowed = security.scope.cameras_for(principal)
    out = []
    for raw in ctx.cameras():
        status = CameraStatus.model_validate(raw)
        if allowed is None or status.id in allowed:
            status.khu_pho, status.ward = security.scope.place_names(status.id)
            out.append(status)
    return out


@router.get("/cameras", response_model=list[CameraStatus])
def list_cameras(ctx: Ctx, principal: Caller, security: Sec) -> list[CameraStatus]:
    """The cameras of the caller's khu phố (every camera for administrators)."""
    return _statuses(ctx, principal, security)


@router.get(
    "/cameras/{camera_id}", response_model=CameraStatus, responses={404: {"description": "Unknown camera"}}
)
def get_camera(camera_id: str, ctx: Ctx, principal: Caller, security: Sec) -> CameraStatus:
    for status in _statuses(ctx, principal, security):
        if status.id == camera_id:
            return status
    raise HTTPException(status_code=404, detail=f"unknown camera {camera_id!r}")
