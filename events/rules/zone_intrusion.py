"""Zone intrusion: one event per episode of matching objects inside a polygon.

An episode starts at the first frame in which a matching tracked object
(class, confidence, anchor inside the polygon, within active hours) is seen.
While it lasts, tracks that join are added to it (``track_ids`` and
``classes`` keep everyone seen during the episode), and a matching object seen
with a higher confidence than before yields a snapshot candidate. The episode
ends once no matching object has been in the zone for ``end_after_s`` of stream
time; outside the active hours nothing matches, so an episode running when
they end is closed the same way. ``data``: ``max_count``, the most matching
objects seen in the zone at once.
"""

from __future__ import annotations

from datetime import tzinfo

import numpy as np

from events.config import ZoneIntrusionConfig
from events.model import EventType
from events.rules.base import FrameContext, RuleOutput, ZoneRule

_EPISODE = None  # key of the single open event


class ZoneIntrusionRule(ZoneRule):
    event_type = EventType.ZONE_INTRUSION

    def __init__(self, config: ZoneIntrusionConfig, camera: str, tz: tzinfo) -> None:
        super().__init__(config, camera, tz)
        self.config: ZoneIntrusionConfig = config

    def update(self, ctx: FrameContext, out: RuleOutput) -> None:
        inside = np.flatnonzero(self.in_zone(ctx))
        ev = self._open.get(_EPISODE)
        if len(inside):
            best = int(inside[np.argmax(ctx.confidence[inside])])
            ids = set(ctx.tracker_id[inside].tolist())
            classes = set(ctx.class_name[inside].tolist())
            if ev is None:
                ev = self._open_event(_EPISODE, ctx)
                ev.track_ids, ev.classes = ids, classes
                ev.data["max_count"] = len(inside)
                self._offer_snapshot(ev, ctx, best, out)
                self._emit_start(ev, out)
                return
            ev.last_active_pts, ev.last_active_wall = ctx.pts, ctx.wall_time
            if not ids <= ev.track_ids or not classes <= ev.classes:
                ev.track_ids |= ids
                ev.classes |= classes
                ev.dirty = True
            if len(inside) > ev.data["max_count"]:
                ev.data["max_count"] = len(inside)
                ev.dirty = True
            self._offer_snapshot(ev, ctx, best, out)
        elif ev is not None and ctx.pts - ev.last_active_pts > self.end_after_s:
            self._end(_EPISODE, out, "cleared")
            return
        self._emit_updates(ctx, out)
