"""Query-parameter helpers shared by the routes: time parsing, filters, 422s that name the field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Query
from fastapi.exceptions import RequestValidationError

from events.model import EventType
from events.storage.store import EventFilters


def invalid(field: str, message: str, value: Any) -> RequestValidationError:
    """A 422 in FastAPI's own format (``loc: ["query", field]``), for checks beyond the type."""
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", field), "msg": message, "input": value}]
    )


def utc(dt: datetime | None) -> datetime | None:
    """Times without an offset are taken as UTC (what the API returns)."""
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt


Since = Annotated[
    datetime | None,
    Query(
        description="ISO 8601 (or Unix seconds); inclusive; no offset means UTC",
        examples=["2024-05-01T06:00:00Z"],
    ),
]
Until = Annotated[
    datetime | None, Query(description="ISO 8601 (or Unix seconds); exclusive; no offset means UTC")
]


def time_range(since: datetime | None, until: datetime | None) -> tuple[datetime | None, datetime | None]:
    since, until = utc(since), utc(until)
    if since is not None and until is not None and until < since:
        raise invalid("until", "until is earlier than since", until.isoformat())
    return since, until


def event_filters(
    camera: Annotated[str | None, Query(description="camera id")] = None,
    type: Annotated[EventType | None, Query(description="event type")] = None,
    class_name: Annotated[
        str | None, Query(alias="class", description="object class among the event's classes, e.g. person")
    ] = None,
    since: Since = None,
    until: Until = None,
    active: Annotated[bool | None, Query(description="true: events still open; false: ended")] = None,
) -> EventFilters:
    since, until = time_range(since, until)
    return EventFilters(camera, type, class_name, since, until, active)
