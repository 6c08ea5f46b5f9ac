"""``GET /metrics`` in the Prometheus text format."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Response

from api.auth.deps import optional_principal, unauthorized
from api.auth.principal import Principal, Role
from api.context import Ctx

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}, 401: {}})
def metrics(ctx: Ctx, principal: Annotated[Principal | None, Depends(optional_principal)]) -> Response:
    """For an API key with role ``metrics`` (Prometheus' ``authorization`` setting) or an administrator."""
    if principal is None:
        raise unauthorized()
    if principal.role not in (Role.METRICS, Role.ADMIN):
        raise HTTPException(status_code=403, detail="metrics need an administrator or a metrics key")
    return Response(ctx.metrics.render(), media_type=ctx.metrics.content_type)
