"""Response bodies of the HTTP API (requests are plain query parameters)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from events.model import Event
from events.storage.store import TrafficRow


class CameraStatus(BaseModel):
    """One camera's health as ingest reports it."""

    # Built from whatever the provider returns (dict, model, dataclass); unknown fields are ignored.
    model_config = ConfigDict(from_attributes=True, extra="ignore")

    id: str
    name: str = ""
    state: str  # e.g. "connecting", "online", "offline", "frozen" (ingest's vocabulary)
    last_frame_time: datetime | None = None
    source_fps: float | None = None
    analysed_fps: float | None = None
    reconnects: int = 0
    last_error: str | None = None
    dropped_frames: int | None = None
    width: int | None = None  # of the decoded picture, once known
    height: int | None = None
    khu_pho: str = ""  # names from the configuration, e.g. "Khu phố 1"
    ward: str = ""
    node: str | None = None  # cluster mode: the node whose actor analyses the camera

    @model_validator(mode="after")
    def _default_name(self) -> CameraStatus:
        if not self.name:
            self.name = self.id
        return self


class EventPage(BaseModel):
    items: list[Event]
    next_cursor: str | None  # pass as ``cursor`` for the next (older) page; null on the last page


class EventCount(BaseModel):
    count: int


class TrafficPage(BaseModel):
    bucket: Literal["minute", "hour", "day"]
    tz: str
    items: list[TrafficRow]


class Health(BaseModel):
    status: Literal["ok", "error"]
    detail: str | None = None
