"""After a crash: when the last run was last alive, and the events it left open, ended as interrupted."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from pathlib import Path

from events.model import EventTransition, Phase
from events.storage.store import EventStore

log = logging.getLogger(__name__)

END_REASON = "interrupted"


class Heartbeat:
    """A file holding the time the service was last known alive, rewritten about once a second."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / "heartbeat"

    def last(self) -> datetime | None:
        """When the previous run was last alive, or None (first run, or a damaged file)."""
        try:
            return datetime.fromtimestamp(float(self.path.read_text().strip()), UTC)
        except (FileNotFoundError, ValueError, OSError):
            return None

    def beat(self, now: float | None = None) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(f"{time.time() if now is None else now:.3f}")
        os.replace(tmp, self.path)


def end_interrupted(
    store: EventStore,
    last_alive: datetime | None,
    *,
    camera: str | None = None,
    keep: Collection[str] = (),
) -> list[EventTransition]:
    """End every event still open in ``store`` (the previous run stopped without ending them), or only
    ``camera``'s (cluster mode: its actor was lost).

    Each gets an ``end`` at the last time the previous run was known alive (never
    before the event's own start), with ``data.end_reason = "interrupted"``. Returns
    the transitions, already stored. Events whose ids are in ``keep`` stay open (the cluster
    controller's own ``camera_offline`` of a camera still away).
    """
    ends = []
    # Only the camera's rows: a cluster controller fences cameras one by one, and reading every open
    # event of the city for each made a 5,000-camera restart take minutes (benchmarks/city.py).
    for event in store.open_events(camera):
        if event.id in keep:
            continue
        end_time = max(event.start_time, last_alive) if last_alive is not None else event.start_time
        ended = event.model_copy(
            update={
                "active": False,
                "end_time": end_time,
                "end_pts": event.start_pts + (end_time - event.start_time) / timedelta(seconds=1),
                "data": {**event.data, "end_reason": END_REASON},
            }
        )
        ends.append(EventTransition(phase=Phase.END, event=ended))
    if ends:
        store.apply_batch(ends, ())
        log.warning(
            "ended %d event(s) the previous run left open (interrupted; last alive %s)",
            len(ends),
            last_alive.isoformat() if last_alive else "unknown",
        )
    return ends
