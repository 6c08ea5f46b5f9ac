"""Camera status, from the provider ingest wires in."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from api.context import Ctx
from api.schemas import CameraStatus

router = APIRouter(tags=["cameras"])


def _statuses(ctx: Ctx) -> list[CameraStatus]:
    return [CameraStatus.model_validate(s) for s in ctx.cameras()]


@router.get("/cameras", response_model=list[CameraStatus])
def list_cameras(ctx: Ctx) -> list[CameraStatus]:
    return _statuses(ctx)


@router.get(
    "/cameras/{camera_id}", response_model=CameraStatus, responses={404: {"description": "Unknown camera"}}
)
def get_camera(camera_id: str, ctx: Ctx) -> CameraStatus:
    for status in _statuses(ctx):
        if status.id == camera_id:
            return status
    raise HTTPException(status_code=404, detail=f"unknown camera {camera_id!r}")
