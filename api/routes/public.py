"""Public, read-only traffic information for signage and apps: no login, nothing about single vehicles.

- ``GET /public/traffic``: every road segment and lane (level, speed, age, healthy share, the
  last minute's counts), JSON rendered once per board tick and served as is, with ``ETag``
  (``If-None-Match`` gets 304) and ``Cache-Control: public, max-age=<tick>``.
- ``GET /public/traffic/stream``: the same document as Server-Sent Events (``event: traffic``),
  sent when something shown changes and at least every ``stream_heartbeat_s`` (so a board can
  tell a quiet road from a dead link). At most ``max_stream_clients`` at once (503 beyond); a
  slow client skips to the newest state instead of queueing old ones.
- ``GET /public/signage?layout=landscape|portrait``: the page for electronic boards.

Only segment and lane aggregates leave through here: no track ids, boxes, events or pictures.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from api.signage import render_signage
from events.congestion import TrafficBoard, TrafficState
from events.feed import FeedClosed, FeedFull, FeedSubscription

router = APIRouter(prefix="/public", tags=["public"])


def get_board(request: Request) -> TrafficBoard:
    board: TrafficBoard | None = getattr(request.app.state, "traffic", None)
    if board is None:
        raise HTTPException(404, "traffic information is not configured on this node")
    return board


@router.get(
    "/traffic",
    responses={
        200: {"content": {"application/json": {}}, "description": "segments and lanes"},
        304: {"description": "unchanged since the ETag given in If-None-Match"},
    },
)
def public_traffic(request: Request, if_none_match: Annotated[str | None, Header()] = None) -> Response:
    """Road segments and lanes: level (DATEX II), speed, age, healthy share, last minute's counts."""
    # async: nothing here blocks (the body is rendered by the board's thread), so no thread-pool hop.
    board = get_board(request)
    state = board.latest
    headers = {
        "ETag": state.etag,
        "Cache-Control": f"public, max-age={max(1, round(board.config.tick_s))}",
        "Access-Control-Allow-Origin": "*",  # read-only public data: any app may fetch it
    }
    if if_none_match is not None and state.etag in {tag.strip() for tag in if_none_match.split(",")}:
        return Response(status_code=304, headers=headers)
    return Response(content=state.body, media_type="application/json", headers=headers)


def _sse(state: TrafficState) -> bytes:
    return b"event: traffic\ndata: " + state.body + b"\n\n"


async def _stream(board: TrafficBoard, sub: FeedSubscription[TrafficState]) -> AsyncIterator[bytes]:
    heartbeat = board.config.stream_heartbeat_s
    try:
        yield b"retry: 3000\n: connected\n\n"
        yield _sse(board.latest)
        sub.get_nowait()  # what was just sent counts as seen
        while True:
            try:
                value = await sub.get(timeout=heartbeat)
                yield _sse(value.value)
            except TimeoutError:
                yield _sse(board.latest)  # nothing changed: the current ages, as a heartbeat
            except FeedClosed:
                return
    finally:
        sub.close()


@router.get(
    "/traffic/stream",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"},
        503: {"description": "too many stream clients"},
    },
)
async def public_traffic_stream(request: Request) -> StreamingResponse:
    """``event: traffic`` messages carrying the ``/public/traffic`` document."""
    board = get_board(request)
    try:
        sub = board.feed.subscribe()
    except FeedFull:
        raise HTTPException(
            503, "too many live clients; poll /public/traffic instead", {"Retry-After": "10"}
        ) from None
    except FeedClosed:
        raise HTTPException(503, "shutting down") from None
    return StreamingResponse(
        _stream(board, sub),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Access-Control-Allow-Origin": "*"},
    )


@router.get("/signage", response_class=HTMLResponse)
async def signage(
    request: Request,
    layout: Annotated[
        Literal["landscape", "portrait"], Query(description="1920x1080 or 1080x1920")
    ] = "landscape",
    segment: Annotated[list[str] | None, Query(description="only these segment ids (repeatable)")] = None,
) -> HTMLResponse:
    """The signage page: each segment's level and speed, Vietnamese first, updated live."""
    board = get_board(request)
    nonce = secrets.token_urlsafe(16)
    state = board.latest
    segments = state.segments()
    if segment:
        unknown = sorted(set(segment) - {s["id"] for s in segments})
        if unknown:
            raise HTTPException(404, f"unknown segment: {', '.join(unknown)}")
        segments = [s for s in segments if s["id"] in segment]
    html = render_signage(
        segments,
        layout=layout,
        generated_at=state.document["generated_at"],
        stale_after_s=board.config.stream_heartbeat_s * 3,
        stream_url="traffic/stream",  # relative: right behind any proxy prefix
        timezone=str(board.tz),  # the board's clock shows local time whatever the screen's zone
        nonce=nonce,
    )
    # The site-wide policy allows no inline code; this page's own style and script carry a fresh nonce.
    csp = (
        f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return HTMLResponse(html, headers={"Cache-Control": "no-cache", "Content-Security-Policy": csp})
