"""Event queries limited to the cameras a caller may see.

A scope of several cameras runs the store's one-camera query per camera with the
same cursor and merges the pages: the cursor is a position in the global
``(start_time, id)`` order, so each camera's page holds everything of that camera
after it, and the merged first ``limit`` events are exactly the scoped page.
"""

from __future__ import annotations

from dataclasses import replace

from events.model import Event
from events.storage.store import EventFilters, EventStore, decode_cursor, encode_cursor


def _cameras(allowed: frozenset[str], filters: EventFilters) -> list[str]:
    wanted = [filters.camera] if filters.camera else sorted(allowed)
    return [c for c in wanted if c in allowed]


def list_scoped(
    store: EventStore, allowed: frozenset[str] | None, filters: EventFilters, limit: int, cursor: str | None
) -> tuple[list[Event], str | None]:
    if allowed is None:
        return store.list_events(filters, limit=limit, cursor=cursor)
    if cursor is not None:
        decode_cursor(cursor)  # a bad cursor is a 422 even when no camera is in scope
    merged: list[Event] = []
    more = False
    for cam in _cameras(allowed, filters):
        items, nxt = store.list_events(replace(filters, camera=cam), limit=limit, cursor=cursor)
        merged += items
        more = more or nxt is not None
    merged.sort(key=lambda e: (e.start_time, e.id), reverse=True)
    page = merged[:limit]
    more = more or len(merged) > limit
    return page, encode_cursor(page[-1].start_time, page[-1].id) if more and page else None


def count_scoped(store: EventStore, allowed: frozenset[str] | None, filters: EventFilters) -> int:
    if allowed is None:
        return store.count_events(filters)
    return sum(store.count_events(replace(filters, camera=cam)) for cam in _cameras(allowed, filters))
