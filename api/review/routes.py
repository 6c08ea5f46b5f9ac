"""``/review/items``: list, one item with its events and comments, actions, and a live feed (SSE)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from api.auth.deps import Actor, Caller, Sec, client_address
from api.auth.principal import Principal
from api.auth.security import Security
from api.queries import Since, Until, invalid, time_range
from api.review.store import RESOLUTIONS, ReviewError, ReviewItem
from events.model import EventType
from events.storage.store import InvalidCursor

router = APIRouter(tags=["review"])
NOT_FOUND = {404: {"description": "Unknown review item"}}
CONFLICT = {409: {"description": "The item's state does not allow this"}}


class ReviewItemOut(BaseModel):
    id: str
    camera: str
    rule: str
    type: str
    severity: Literal["alert", "detection"]
    state: Literal["new", "acknowledged", "assigned", "resolved", "reopened"]
    start_time: datetime
    last_time: datetime
    active: bool
    events: int
    tracks: int
    classes: list[str]
    assignee: str | None
    resolution: Literal["true_alarm", "false_alarm", "duplicate"] | None
    note: str | None
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    seq: int
    seen: bool = False


class ReviewPage(BaseModel):
    items: list[ReviewItemOut]
    next_cursor: str | None


class Comment(BaseModel):
    author: str
    time: datetime
    text: str


class ReviewDetail(ReviewItemOut):
    event_ids: list[str]
    comments: list[Comment]
    seen_by: list[str]


class AssignBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: Annotated[str, Field(min_length=1, max_length=64)]


class ResolveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    resolution: Literal["true_alarm", "false_alarm", "duplicate"]
    note: Annotated[str, Field(max_length=2000)] = ""


class CommentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: Annotated[str, Field(min_length=1, max_length=2000)]


def item_out(item: ReviewItem, seen: bool = False) -> ReviewItemOut:
    return ReviewItemOut(**item.as_dict(), seen=seen)


def visible_item(security: Security, principal: Principal, item_id: str) -> ReviewItem:
    item = security.review.get(item_id, security.scope.cameras_for(principal))
    if item is None:
        raise HTTPException(status_code=404, detail="unknown review item")
    return item


@router.get("/review/items", response_model=ReviewPage)
def list_items(
    principal: Caller,
    security: Sec,
    camera: Annotated[list[str] | None, Query(description="camera ids (repeatable)")] = None,
    khu_pho: Annotated[str | None, Query(description="khu phố id")] = None,
    state: Annotated[
        list[Literal["new", "acknowledged", "assigned", "resolved", "reopened"]] | None, Query()
    ] = None,
    type: Annotated[list[EventType] | None, Query()] = None,
    severity: Annotated[Literal["alert", "detection"] | None, Query()] = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> ReviewPage:
    """Review items of the caller's cameras, newest first; ``seen`` is per user."""
    since, until = time_range(since, until)
    allowed = security.scope.cameras_for(principal)
    if khu_pho is not None:
        in_place = {c for c, kp in security.scope.camera_khu_pho.items() if kp == khu_pho}
        allowed = frozenset(in_place if allowed is None else in_place & allowed)
    try:
        items, nxt = security.review.list(
            allowed,
            camera=camera,
            state=state,
            type=[str(t) for t in type] if type else None,
            severity=severity,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        )
    except InvalidCursor as exc:
        raise invalid("cursor", str(exc), cursor) from exc
    seen = security.review.seen_items(principal.name, [i.id for i in items])
    return ReviewPage(items=[item_out(i, i.id in seen) for i in items], next_cursor=nxt)


def detail(security: Security, principal: Principal, item: ReviewItem) -> ReviewDetail:
    return ReviewDetail(
        **item_out(item).model_dump(exclude={"seen"}),
        seen=principal.name in security.review.seen_by(item.id),
        event_ids=security.review.event_ids(item.id),
        comments=[Comment(**c) for c in security.review.comments(item.id)],
        seen_by=security.review.seen_by(item.id),
    )


@router.get("/review/items/{item_id}", response_model=ReviewDetail, responses=NOT_FOUND)
def get_item(item_id: str, principal: Caller, security: Sec) -> ReviewDetail:
    return detail(security, principal, visible_item(security, principal, item_id))


def act(
    security: Security, principal: Principal, request: Request, item_id: str, action: str, **args: str
) -> ReviewItem:
    """Run one action on a visible item and audit it; 404 outside scope, 409 when the state forbids it."""
    visible_item(security, principal, item_id)
    try:
        if action == "acknowledge":
            item = security.review.acknowledge(item_id)
        elif action == "assign":
            assignee = security.auth.user(args["username"])
            if assignee is None or assignee.disabled:
                raise ReviewError("unknown user")
            item = security.review.assign(item_id, assignee.username)
        elif action == "resolve":
            item = security.review.resolve(item_id, args["resolution"], args.get("note", ""))
        elif action == "reopen":
            item = security.review.reopen(item_id)
        elif action == "comment":
            security.review.comment(item_id, principal.name, args["text"])
            item = visible_item(security, principal, item_id)
        else:  # pragma: no cover - the routes name the actions
            raise ValueError(action)
    except ReviewError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    security.audit.record(
        principal.name, f"review.{action}", item_id, address=client_address(request), **args
    )
    return item


@router.post(
    "/review/items/{item_id}/acknowledge", response_model=ReviewItemOut, responses={**NOT_FOUND, **CONFLICT}
)
def acknowledge(item_id: str, request: Request, principal: Actor, security: Sec) -> ReviewItemOut:
    return item_out(act(security, principal, request, item_id, "acknowledge"))


@router.post(
    "/review/items/{item_id}/assign", response_model=ReviewItemOut, responses={**NOT_FOUND, **CONFLICT}
)
def assign(
    item_id: str, body: AssignBody, request: Request, principal: Actor, security: Sec
) -> ReviewItemOut:
    return item_out(act(security, principal, request, item_id, "assign", username=body.username))


@router.post(
    "/review/items/{item_id}/resolve", response_model=ReviewItemOut, responses={**NOT_FOUND, **CONFLICT}
)
def resolve(
    item_id: str, body: ResolveBody, request: Request, principal: Actor, security: Sec
) -> ReviewItemOut:
    return item_out(
        act(security, principal, request, item_id, "resolve", resolution=body.resolution, note=body.note)
    )


@router.post(
    "/review/items/{item_id}/reopen", response_model=ReviewItemOut, responses={**NOT_FOUND, **CONFLICT}
)
def reopen(item_id: str, request: Request, principal: Actor, security: Sec) -> ReviewItemOut:
    return item_out(act(security, principal, request, item_id, "reopen"))


@router.post("/review/items/{item_id}/comments", response_model=ReviewItemOut, responses=NOT_FOUND)
def comment(
    item_id: str, body: CommentBody, request: Request, principal: Actor, security: Sec
) -> ReviewItemOut:
    return item_out(act(security, principal, request, item_id, "comment", text=body.text))


@router.post("/review/items/{item_id}/seen", response_model=ReviewItemOut, responses=NOT_FOUND)
def mark_seen(item_id: str, principal: Caller, security: Sec) -> ReviewItemOut:
    """Mark the item seen by the caller (viewers too: it changes nothing for others)."""
    item = visible_item(security, principal, item_id)
    security.review.mark_seen(item_id, principal.name)
    return item_out(item, seen=True)


async def _feed(
    security: Security, allowed: frozenset[str] | None, after: int, poll_s: float, heartbeat_s: float
) -> AsyncIterator[str]:
    yield "retry: 3000\n: connected\n\n"
    idle = 0.0
    while True:
        items = await asyncio.to_thread(security.review.changed_since, after, allowed)
        for item in items:
            after = max(after, item.seq)
            payload = item_out(item).model_dump_json()
            yield f"id: {item.seq}\nevent: item\ndata: {payload}\n\n"
        if items:
            idle = 0.0
        else:
            idle += poll_s
            if idle >= heartbeat_s:
                idle = 0.0
                yield ": ping\n\n"
            await asyncio.sleep(poll_s)


@router.get(
    "/review/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"}},
)
async def stream_items(
    request: Request,
    principal: Caller,
    security: Sec,
    last_event_id: Annotated[str | None, Header(max_length=32)] = None,
) -> StreamingResponse:
    """Review items of the caller's cameras as they are created or change (``event: item``).

    Without ``Last-Event-ID`` the feed starts from now; with it, from that change.
    """
    after = int(last_event_id) if last_event_id and last_event_id.isdigit() else security.review.last_seq()
    heartbeat = request.app.state.khupho.heartbeat_s
    return StreamingResponse(
        _feed(security, security.scope.cameras_for(principal), after, 0.5, heartbeat),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


__all__ = ["RESOLUTIONS", "router"]
