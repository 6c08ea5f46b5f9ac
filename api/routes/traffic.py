"""``GET /traffic``: line-crossing counts summed per minute, hour or day."""

from __future__ import annotations

from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Query

from api.auth.deps import Caller, Sec
from api.context import Ctx
from api.queries import Since, Until, invalid, time_range
from api.schemas import TrafficPage

router = APIRouter(tags=["traffic"])


@router.get("/traffic", response_model=TrafficPage)
def traffic(
    ctx: Ctx,
    principal: Caller,
    security: Sec,
    camera: Annotated[str | None, Query(description="camera id; all cameras if omitted")] = None,
    line: Annotated[str | None, Query(description="counting line name; all lines if omitted")] = None,
    since: Since = None,
    until: Until = None,
    bucket: Annotated[Literal["minute", "hour", "day"], Query(description="aggregation step")] = "hour",
    tz: Annotated[
        str | None,
        Query(
            max_length=64,
            description="IANA time zone of hour/day buckets (default: the server's)",
            examples=["Asia/Ho_Chi_Minh"],
        ),
    ] = None,
) -> TrafficPage:
    """Crossings per bucket, line, class and direction, oldest first."""
    since, until = time_range(since, until)
    tz = tz or ctx.traffic_tz
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: a name too long for a file
        raise invalid("tz", f"unknown time zone {tz!r}", tz) from exc
    allowed = security.scope.cameras_for(principal)
    if allowed is not None and camera is not None and camera not in allowed:
        return TrafficPage(bucket=bucket, tz=tz, items=[])
    rows = ctx.store.traffic(camera, line, since, until, bucket=bucket, tz=zone)
    return TrafficPage(
        bucket=bucket, tz=tz, items=[r for r in rows if allowed is None or r.camera in allowed]
    )
