"""Stored events: filtered, cursor-paginated listing, one event, its snapshot (redacted, or with a reason
the original) and its video clip (with a reason, for those who may see unredacted pictures), all limited
to the caller's cameras: another khu phố's event is a 404."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse

from api.auth.deps import Caller, Sec, client_address
from api.auth.principal import Principal
from api.auth.security import Security
from api.context import AppContext, Ctx
from api.queries import EventFilters, event_filters, invalid
from api.ranges import RangeNotSatisfiable, byte_range
from api.schemas import EventCount, EventPage
from api.scoped_events import count_scoped, list_scoped
from events.model import Event
from events.storage.objects import ObjectNotFound
from events.storage.snapshot import unredacted_key
from events.storage.store import InvalidCursor

router = APIRouter(tags=["events"])

Filters = Annotated[EventFilters, Depends(event_filters)]
NOT_FOUND = {404: {"description": "Unknown event"}}
SNAPSHOT_RESPONSES = {
    200: {"content": {"image/jpeg": {}}, "description": "The JPEG (local storage)"},
    307: {"description": "Redirect to a time-limited S3 link"},
    404: {"description": "Unknown event, or no snapshot yet"},
}
CLIP_TYPE = "video/mp4"


@router.get("/events", response_model=EventPage)
def list_events(
    ctx: Ctx,
    filters: Filters,
    principal: Caller,
    security: Sec,
    limit: Annotated[int, Query(ge=1, le=500, description="page size")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=512, description="next_cursor of the previous page")
    ] = None,
) -> EventPage:
    """Events newest first (by start time, then id). Follow ``next_cursor`` for older ones.

    Pages are stable while new events arrive: a cursor marks a position in time, so
    newer events never push items from one page onto the next.
    """
    allowed = security.scope.cameras_for(principal)
    try:
        items, next_cursor = list_scoped(ctx.store, allowed, filters, limit, cursor)
    except InvalidCursor as exc:
        raise invalid("cursor", str(exc), cursor) from exc
    return EventPage(items=items, next_cursor=next_cursor)


@router.get("/events/count", response_model=EventCount)
def count_events(ctx: Ctx, filters: Filters, principal: Caller, security: Sec) -> EventCount:
    """How many events match the filters of ``GET /events``."""
    return EventCount(count=count_scoped(ctx.store, security.scope.cameras_for(principal), filters))


def visible_event(ctx: AppContext, security: Security, principal: Principal, event_id: str) -> Event:
    """The event if it exists and the caller may see its camera; 404 otherwise (never 403)."""
    event = ctx.store.get(event_id)
    if event is None or not security.scope.may_see(principal, event.camera):
        raise HTTPException(status_code=404, detail=f"unknown event {event_id!r}")
    return event


@router.get("/events/{event_id}", response_model=Event, responses=NOT_FOUND)
def get_event(event_id: str, ctx: Ctx, principal: Caller, security: Sec) -> Event:
    return visible_event(ctx, security, principal, event_id)


def serve_snapshot(ctx: AppContext, event: Event, key: str) -> Response:
    # A better snapshot may still replace this one while the event is open.
    cache = "private, max-age=3600" if not event.active else "no-cache"
    url = ctx.objects.presigned_url(key, ctx.presign_expiry)
    if url is not None:
        return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
    try:
        chunks = ctx.objects.open(key)
    except ObjectNotFound as exc:
        raise HTTPException(status_code=404, detail="snapshot is missing") from exc
    return StreamingResponse(chunks, media_type="image/jpeg", headers={"Cache-Control": cache})


@router.get("/events/{event_id}/snapshot", response_class=Response, responses=SNAPSHOT_RESPONSES)
def get_snapshot(event_id: str, request: Request, ctx: Ctx, principal: Caller, security: Sec) -> Response:
    """The event's best snapshot with faces blurred: streamed from local storage, or a presigned S3 link."""
    event = visible_event(ctx, security, principal, event_id)
    if not event.snapshot:
        raise HTTPException(status_code=404, detail="no snapshot yet")
    security.audit.record(
        principal.name, "snapshot.view", event_id, address=client_address(request), camera=event.camera
    )
    return serve_snapshot(ctx, event, event.snapshot)


@router.get(
    "/events/{event_id}/snapshot/unredacted",
    response_class=Response,
    responses={**SNAPSHOT_RESPONSES, 403: {"description": "No unredacted permission"}},
)
def get_unredacted_snapshot(
    event_id: str,
    request: Request,
    ctx: Ctx,
    principal: Caller,
    security: Sec,
    reason: Annotated[str, Query(min_length=5, max_length=500, description="why the original is needed")],
) -> Response:
    """The snapshot without face blur: needs the unredacted permission and a reason; audited."""
    event = visible_event(ctx, security, principal, event_id)
    if not principal.may_unredact:
        raise HTTPException(status_code=403, detail="this account may not see unredacted pictures")
    if not event.snapshot:
        raise HTTPException(status_code=404, detail="no snapshot yet")
    security.audit.record(
        principal.name,
        "snapshot.unredacted",
        event_id,
        address=client_address(request),
        camera=event.camera,
        reason=reason.strip(),
    )
    original = unredacted_key(event.snapshot)
    return serve_snapshot(ctx, event, original if ctx.objects.exists(original) else event.snapshot)


@router.get(
    "/events/{event_id}/clip",
    response_class=Response,
    responses={
        200: {"content": {"video/mp4": {}}, "description": "The whole MP4 (local storage)"},
        206: {"content": {"video/mp4": {}}, "description": "The byte range asked for (local storage)"},
        307: {"description": "Redirect to a time-limited S3 link (S3 serves ranges itself)"},
        403: {"description": "No unredacted permission"},
        404: {"description": "Unknown event, or no clip (yet, or not for this event type)"},
        416: {"description": "The range starts past the end of the clip"},
    },
)
def get_clip(
    event_id: str,
    request: Request,
    ctx: Ctx,
    principal: Caller,
    security: Sec,
    reason: Annotated[str, Query(min_length=5, max_length=500, description="why the video is needed")],
    range_header: Annotated[str | None, Header(alias="Range", description="e.g. bytes=0-1023")] = None,
) -> Response:
    """The event's video clip (MP4, pre-roll before the event to post-roll after it).

    Privacy: a clip is the camera's original video, residents' faces included, and cannot be blurred
    without decoding and re-encoding it; it is neither redacted nor transcoded. So it is served only
    to users with the ``unredacted`` permission, with a typed reason, and audited like an unredacted
    snapshot (once per viewing: range requests after the first byte are not logged again).

    Local storage streams it and honours one HTTP byte range (``206 Partial Content``, so players
    can seek); S3 answers with a redirect to a presigned link, whose server handles ranges. A clip
    is written once the event's post-roll has passed: until then this is 404.
    """
    event = visible_event(ctx, security, principal, event_id)
    if not principal.may_unredact:
        raise HTTPException(status_code=403, detail="this account may not see unredacted video")
    if not event.clip:
        raise HTTPException(status_code=404, detail="no clip for this event")
    if range_header is None or range_header.replace(" ", "").startswith("bytes=0-"):
        security.audit.record(
            principal.name,
            "clip.view",
            event_id,
            address=client_address(request),
            camera=event.camera,
            reason=reason.strip(),
        )
    url = ctx.objects.presigned_url(event.clip, ctx.presign_expiry)
    if url is not None:
        return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
    try:
        size = ctx.objects.stat(event.clip).size
    except ObjectNotFound as exc:
        raise HTTPException(status_code=404, detail="the clip is missing") from exc
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=3600"}
    try:
        wanted = byte_range(range_header, size)
    except RangeNotSatisfiable:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    if wanted is None:
        chunks = ctx.objects.open(event.clip)
        return StreamingResponse(
            chunks, media_type=CLIP_TYPE, headers={**headers, "Content-Length": str(size)}
        )
    first, last = wanted
    chunks = ctx.objects.open_range(event.clip, first, last - first + 1)
    return StreamingResponse(
        chunks,
        status_code=206,
        media_type=CLIP_TYPE,
        headers={
            **headers,
            "Content-Length": str(last - first + 1),
            "Content-Range": f"bytes {first}-{last}/{size}",
        },
    )
