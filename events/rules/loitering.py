"""Loitering: one event per tracked object that stays in a polygon for ``min_dwell_s`` or longer.

Dwell is stream time since the track was first seen in the zone. Leaving the
zone (or not being seen: occlusion, missed detections) for up to
``end_after_s`` does not reset it; a longer absence does, and ends the
track's event if it had one. The event starts at the first frame where the
dwell reaches ``min_dwell_s`` (``start_pts`` is that frame, the arrival is in
``data``) and ends, after the grace, at the last frame the track was in the
zone. Snapshot candidates follow the track's confidence while the event is
open. ``data``: ``dwell_s``, ``entered_pts``, ``entered_time`` (ISO 8601).

A track that is lost and picked up again under a new id starts a new dwell.
"""

from __future__ import annotations

from datetime import tzinfo

import numpy as np

from events.config import LoiteringConfig
from events.model import EventType
from events.rules.base import FrameContext, OpenEvent, RuleOutput, TrackTable, ZoneRule, to_datetime


class LoiteringRule(ZoneRule):
    event_type = EventType.LOITERING

    def __init__(self, config: LoiteringConfig, camera: str, tz: tzinfo) -> None:
        super().__init__(config, camera, tz)
        self.config: LoiteringConfig = config
        self._tracks = self._new_table()

    @staticmethod
    def _new_table() -> TrackTable:
        return TrackTable(
            entered_pts=(np.float64, np.nan),
            entered_wall=(np.float64, np.nan),
            last_in_pts=(np.float64, np.nan),
            last_in_wall=(np.float64, np.nan),
            has_event=(bool, False),
            best=(np.float64, -1.0),  # the open event's best snapshot confidence
        )

    def reset(self) -> None:
        super().reset()
        self._tracks = self._new_table()

    def update(self, ctx: FrameContext, out: RuleOutput) -> None:
        t = self._tracks
        inside = np.flatnonzero(self.in_zone(ctx))
        if len(inside):
            rows = t.rows(ctx.tracker_id[inside])
            new = np.isnan(t["entered_pts"][rows])
            t["entered_pts"][rows[new]] = ctx.pts
            t["entered_wall"][rows[new]] = ctx.wall_time
            t["last_in_pts"][rows] = ctx.pts
            t["last_in_wall"][rows] = ctx.wall_time
            dwell = ctx.pts - t["entered_pts"][rows]
            had_event = t["has_event"][rows]
            starting = ~had_event & (dwell >= self.config.min_dwell_s)
            # Loops below run over events starting or improving this frame only.
            for k in np.flatnonzero(starting):
                self._start(ctx, int(inside[k]), int(rows[k]), out)
            better = had_event & (ctx.confidence[inside] > t["best"][rows])
            for k in np.flatnonzero(better):
                ev = self._open[int(ctx.tracker_id[inside[k]])]
                self._offer_snapshot(ev, ctx, int(inside[k]), out)
                t["best"][rows[k]] = ev.score

        expired = ctx.pts - t["last_in_pts"] > self.end_after_s
        if expired.any():
            for row in np.flatnonzero(expired & t["has_event"]):
                self._end(int(t.ids[row]), out, "cleared")
            t.keep(~expired)
        self._emit_updates(ctx, out)

    def _start(self, ctx: FrameContext, obj: int, row: int, out: RuleOutput) -> None:
        t = self._tracks
        track_id = int(ctx.tracker_id[obj])
        ev = self._open_event(track_id, ctx)
        ev.track_ids.add(track_id)
        ev.classes.add(str(ctx.class_name[obj]))
        ev.data["entered_pts"] = float(t["entered_pts"][row])
        ev.data["entered_time"] = to_datetime(float(t["entered_wall"][row]), self.tz).isoformat()
        self._before_emit(ev, ctx)
        self._offer_snapshot(ev, ctx, obj, out)
        t["has_event"][row] = True
        t["best"][row] = ev.score
        self._emit_start(ev, out)

    def _before_emit(self, ev: OpenEvent, ctx: FrameContext | None) -> None:
        # The table holds the track's last time in the zone; copying it here
        # rather than every frame keeps the per-frame work vectorized.
        t = self._tracks
        track_id = next(iter(ev.track_ids))
        rows, found = t.find(np.array([track_id]))
        if found[0]:
            row = rows[0]
            ev.last_active_pts = float(t["last_in_pts"][row])
            ev.last_active_wall = float(t["last_in_wall"][row])
        ev.data["dwell_s"] = round(ev.last_active_pts - ev.data["entered_pts"], 3)
