"""``GET /events/stream``: live transitions as Server-Sent Events.

Each transition is one SSE message::

    id: 3f2a9c01-42
    event: start
    data: {"id": "3f2a9c01-42", "phase": "start", "event_id": "...", "event": {...}}

``id`` is the bus message id: a browser's ``EventSource`` sends it back as
``Last-Event-ID`` when it reconnects, and the transitions it missed meanwhile are
replayed from the bus history. When some cannot be (the client was too slow, the
history moved on, or the server restarted) an ``event: gap`` message says so
(``{"missed": n}``, ``null`` when unknown): re-read ``GET /events`` to resync.
A ``: ping`` comment every ``heartbeat_s`` keeps proxies from closing an idle
stream and lets the server notice a client that left.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from api.auth.deps import Caller, Sec
from api.context import AppContext, Ctx
from events.model import EventTransition, EventType
from events.storage.bus import BusMessage, Gap, SubscriptionClosed, SubscriptionOverflow, TooManySubscribers

router = APIRouter(tags=["events"])

RETRY_MS = 3000


def format_message(message: BusMessage) -> str:
    tr = message.transition
    payload = {
        "id": message.id,
        "phase": str(tr.phase),
        "event_id": tr.event.id,
        "event": tr.event.model_dump(mode="json"),
    }
    # json.dumps escapes newlines inside strings, so the payload is one SSE data line.
    return f"id: {message.id}\nevent: {tr.phase}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n"


def format_gap(gap: Gap) -> str:
    return f"event: gap\ndata: {json.dumps({'missed': gap.missed})}\n\n"


async def _events(
    ctx: AppContext,
    name: str,
    cameras: frozenset[str] | None,
    types: frozenset[EventType] | None,
    after: str | None,
    allowed: frozenset[str] | None = None,
) -> AsyncIterator[str]:
    def accept(tr: EventTransition) -> bool:
        return (
            (allowed is None or tr.event.camera in allowed)
            and (cameras is None or tr.event.camera in cameras)
            and (types is None or tr.event.type in types)
        )

    # Subscribing inside the generator: if the client leaves before the first byte, no
    # subscription exists to leak. The finally clause runs on disconnect (Starlette
    # cancels the response task) and on server shutdown.
    try:
        sub = ctx.bus.subscribe(name=name, maxsize=ctx.sse_queue_size, accept=accept, after=after)
    except TooManySubscribers:  # filled up since the check in the route: the client retries later
        yield f"retry: {10 * RETRY_MS}\n: too many subscribers\n\n"
        return
    try:
        yield f"retry: {RETRY_MS}\n: connected\n\n"
        while True:
            try:
                message = await sub.get(timeout=ctx.heartbeat_s)
            except TimeoutError:
                yield ": ping\n\n"
                continue
            except SubscriptionOverflow:
                yield format_gap(Gap(None))
                return
            except SubscriptionClosed:
                return
            gap = sub.take_gap()
            if gap is not None:
                yield format_gap(gap)
            yield format_message(message)
    finally:
        sub.close()


@router.get(
    "/events/stream",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"},
        503: {"description": "too many live subscribers"},
    },
)
async def stream_events(
    request: Request,
    ctx: Ctx,
    principal: Caller,
    security: Sec,
    camera: Annotated[list[str] | None, Query(description="only these cameras (repeatable)")] = None,
    type: Annotated[list[EventType] | None, Query(description="only these event types (repeatable)")] = None,
    last_event_id: Annotated[str | None, Header(description="id of the last message received")] = None,
) -> StreamingResponse:
    """Transitions (``start``, ``update``, ``end``) of the caller's cameras as they happen, filtered."""
    if ctx.bus.full():
        raise HTTPException(503, "too many live subscribers; try again later", {"Retry-After": "30"})
    client = f"{request.client.host}:{request.client.port}" if request.client else "?"
    return StreamingResponse(
        _events(
            ctx,
            f"sse {client}",
            frozenset(camera) if camera else None,
            frozenset(type) if type else None,
            last_event_id,
            security.scope.cameras_for(principal),
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
