"""Stored events: filtered, cursor-paginated listing, one event, its snapshot and its video clip."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Response
from fastapi.responses import RedirectResponse, StreamingResponse

from api.context import Ctx
from api.queries import EventFilters, event_filters, invalid
from api.ranges import RangeNotSatisfiable, byte_range
from api.schemas import EventCount, EventPage
from events.model import Event
from events.storage.objects import ObjectNotFound
from events.storage.store import InvalidCursor

router = APIRouter(tags=["events"])

Filters = Annotated[EventFilters, Depends(event_filters)]
NOT_FOUND = {404: {"description": "Unknown event"}}
CLIP_TYPE = "video/mp4"


@router.get("/events", response_model=EventPage)
def list_events(
    ctx: Ctx,
    filters: Filters,
    limit: Annotated[int, Query(ge=1, le=500, description="page size")] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> EventPage:
    """Events newest first (by start time, then id). Follow ``next_cursor`` for older ones.

    Pages are stable while new events arrive: a cursor marks a position in time, so
    newer events never push items from one page onto the next.
    """
    try:
        items, next_cursor = ctx.store.list_events(filters, limit=limit, cursor=cursor)
    except InvalidCursor as exc:
        raise invalid("cursor", str(exc), cursor) from exc
    return EventPage(items=items, next_cursor=next_cursor)


@router.get("/events/count", response_model=EventCount)
def count_events(ctx: Ctx, filters: Filters) -> EventCount:
    """How many events match the filters of ``GET /events``."""
    return EventCount(count=ctx.store.count_events(filters))


@router.get("/events/{event_id}", response_model=Event, responses=NOT_FOUND)
def get_event(event_id: str, ctx: Ctx) -> Event:
    event = ctx.store.get(event_id)
    if event is None:
        raise HTTPException(status_code=404, detail=f"unknown event {event_id!r}")
    return event


@router.get(
    "/events/{event_id}/snapshot",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "The JPEG (local storage)"},
        307: {"description": "Redirect to a time-limited S3 link"},
        404: {"description": "Unknown event, or no snapshot yet"},
    },
)
def get_snapshot(event_id: str, ctx: Ctx) -> Response:
    """The event's best snapshot: streamed from local storage, or a redirect to a presigned S3 link."""
    event = ctx.store.get(event_id)
    if event is None:
        raise HTTPException(status_code=404, detail=f"unknown event {event_id!r}")
    if not event.snapshot:
        raise HTTPException(status_code=404, detail=f"event {event_id!r} has no snapshot yet")
    # A better snapshot may still replace this one while the event is open.
    cache = "private, max-age=3600" if not event.active else "no-cache"
    url = ctx.objects.presigned_url(event.snapshot, ctx.presign_expiry)
    if url is not None:
        return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
    try:
        chunks = ctx.objects.open(event.snapshot)
    except ObjectNotFound as exc:
        raise HTTPException(status_code=404, detail=f"snapshot of event {event_id!r} is missing") from exc
    return StreamingResponse(chunks, media_type="image/jpeg", headers={"Cache-Control": cache})


def clip_access(ctx: Ctx) -> None:
    """Who may watch event clips: the single place the permission check goes.

    Policy: a clip is the camera's original video, faces of residents and passers-by included,
    and it cannot be blurred without decoding and re-encoding it. So clips are not redacted and
    not transcoded on demand; they are served only to users holding the ``unredacted``
    permission (snapshots and the event feed stay available to the others). This build has no
    user accounts yet, so there is nobody to check: deploy the API behind the site's
    authenticating proxy, and when accounts land, raise 403 here for a user without
    ``unredacted``.
    """


@router.get(
    "/events/{event_id}/clip",
    response_class=Response,
    responses={
        200: {"content": {"video/mp4": {}}, "description": "The whole MP4 (local storage)"},
        206: {"content": {"video/mp4": {}}, "description": "The byte range asked for (local storage)"},
        307: {"description": "Redirect to a time-limited S3 link (S3 serves ranges itself)"},
        404: {"description": "Unknown event, or no clip (yet, or not for this event type)"},
        416: {"description": "The range starts past the end of the clip"},
    },
    dependencies=[Depends(clip_access)],
)
def get_clip(
    event_id: str,
    ctx: Ctx,
    range_header: Annotated[str | None, Header(alias="Range", description="e.g. bytes=0-1023")] = None,
) -> Response:
    """The event's video clip (MP4, pre-roll before the event to post-roll after it), for users with
    the ``unredacted`` permission (see :func:`clip_access`).

    Local storage streams it and honours one HTTP byte range (``206 Partial Content``, so players
    can seek); S3 answers with a redirect to a presigned link, whose server handles ranges. A clip
    is written once the event's post-roll has passed: until then this is 404.
    """
    event = ctx.store.get(event_id)
    if event is None:
        raise HTTPException(status_code=404, detail=f"unknown event {event_id!r}")
    if not event.clip:
        raise HTTPException(status_code=404, detail=f"event {event_id!r} has no clip")
    url = ctx.objects.presigned_url(event.clip, ctx.presign_expiry)
    if url is not None:
        return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
    try:
        size = ctx.objects.stat(event.clip).size
    except ObjectNotFound as exc:
        raise HTTPException(status_code=404, detail=f"clip of event {event_id!r} is missing") from exc
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
