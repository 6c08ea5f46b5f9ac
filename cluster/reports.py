"""What camera and detector actors tell the controller each round, and what it tells operators."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A node the engine reports alive and offering camera capacity."""

    id: str
    address: str
    capacity: int


@dataclass(frozen=True, slots=True)
class DetectorReport:
    """A node's detector actor: its queue and its work so far."""

    node: str
    queue_depth: int
    batches: int
    images: int
    seconds: float
    runtime: str
    precision: str


@dataclass(frozen=True, slots=True)
class CameraReport:
    """A camera actor's state: its source, its frames, its writer."""

    camera: str
    node: str
    epoch: int
    state: str  # ingest.status.CameraState value: connecting, online, offline...
    analysed: int
    decoded: int
    dropped: int
    reconnects: int
    analysed_fps: float
    source_fps: float
    stored_batches: int
    backlog: int
    last_error: str | None = None
    # Traffic cameras: lane states of the last analysed frame, and lane minutes closed since the last
    # report (the API processes' traffic boards are fed from these: signage and /public/traffic).
    lanes_live: tuple[Any, ...] = ()
    lanes_minutes: tuple[Any, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["lanes_live"], out["lanes_minutes"]  # carried apart, in the status's "traffic"
        return out
