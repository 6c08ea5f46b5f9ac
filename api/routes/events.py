"""Stored events: filtered, cursor-paginated listing, one event, its snapshot."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from fastapi.responses import RedirectResponse, StreamingResponse

from api.context import Ctx
from api.queries import EventFilters, event_filters, invalid
from api.schemas import EventCount, EventPage
from events.model import Event
from events.storage.objects import ObjectNotFound
from events.storage.store import InvalidCursor

router = APIRouter(tags=["events"])

Filters = Annotated[EventFilters, Depends(event_filters)]
NOT_FOUND = {404: {"description": "Unknown event"}}


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
