"""Liveness and readiness: the process answers and the event database can be read."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.context import Ctx
from api.schemas import Health
from events.storage.store import StorageError

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
def healthz(ctx: Ctx) -> Health | JSONResponse:
    try:
        ctx.store.get("healthz")  # an indexed read: proves the database answers
    except StorageError:
        # Public route: say what is wrong, not where (the server's address stays in the log).
        return JSONResponse(
            status_code=503, content=Health(status="error", detail="event store unavailable").model_dump()
        )
    return Health(status="ok")
