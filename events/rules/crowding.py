"""Crowding: at least ``min_count`` matching objects in a polygon for ``min_duration_s``.

The count is the number of matching tracked objects whose anchor is in the
zone in a frame. The condition (count >= ``min_count``) must hold for
``min_duration_s`` of stream time before the event starts; dips below the
threshold shorter than ``end_after_s`` do not restart that wait. The event
starts at the frame where the wait is over (the crowd's onset is in ``data``),
sends throttled updates when the count changes, and ends once the count has
been below the threshold for ``end_after_s``, stamped with the last frame it
was reached.

Snapshot: the frame with the most objects counted, ties broken by a higher
mean confidence; the candidate's ``box`` encloses the crowd, ``boxes`` has
each object. ``score`` is that frame's mean confidence.
``data``: ``count`` (now), ``max_count``, ``min_count``, ``formed_pts``,
``formed_time`` (ISO 8601).
"""

from __future__ import annotations

from collections.abc import Hashable
from datetime import tzinfo
from typing import Any

import numpy as np

from events.config import CrowdingConfig
from events.model import EventType
from events.rules.base import FrameContext, OpenEvent, RuleOutput, ZoneRule, to_datetime

_EPISODE = None


class CrowdingRule(ZoneRule):
    event_type = EventType.CROWDING

    def __init__(self, config: CrowdingConfig, camera: str, tz: tzinfo) -> None:
        super().__init__(config, camera, tz)
        self.config: CrowdingConfig = config
        self.reset()

    def reset(self) -> None:
        super().reset()
        self._formed_pts: float | None = None  # onset of the current run at or above the threshold
        self._formed_wall = 0.0
        self._last_above_pts = -np.inf
        self._best_count = 0

    def update(self, ctx: FrameContext, out: RuleOutput) -> None:
        inside = np.flatnonzero(self.in_zone(ctx))
        count = len(inside)
        above = count >= self.config.min_count
        grace_over = ctx.pts - self._last_above_pts > self.end_after_s
        ev = self._open.get(_EPISODE)

        if above:
            if self._formed_pts is None or grace_over:
                self._formed_pts, self._formed_wall = ctx.pts, ctx.wall_time
            self._last_above_pts = ctx.pts
        elif grace_over:
            if ev is not None:
                self._end(_EPISODE, out, "cleared")
            self._formed_pts = None
            return

        if ev is None:
            if above and ctx.pts - self._formed_pts >= self.config.min_duration_s:
                ev = self._open_event(_EPISODE, ctx)
                ev.data.update(
                    count=count,
                    max_count=count,
                    min_count=self.config.min_count,
                    formed_pts=float(self._formed_pts),
                    formed_time=to_datetime(self._formed_wall, self.tz).isoformat(),
                )
                self._join(ev, ctx, inside, out)
                self._emit_start(ev, out)
            return

        if count != ev.data["count"]:
            ev.data["count"] = count
            ev.dirty = True
        if above:
            if count > ev.data["max_count"]:
                ev.data["max_count"] = count
            self._join(ev, ctx, inside, out)
        self._emit_updates(ctx, out)

    def _join(self, ev: OpenEvent, ctx: FrameContext, inside: np.ndarray, out: RuleOutput) -> None:
        """Add the counted objects to the event and offer the frame as its snapshot."""
        ev.last_active_pts, ev.last_active_wall = ctx.pts, ctx.wall_time
        ids = set(ctx.tracker_id[inside].tolist())
        classes = set(ctx.class_name[inside].tolist())
        if not ids <= ev.track_ids or not classes <= ev.classes:
            ev.track_ids |= ids
            ev.classes |= classes
            ev.dirty = True

        count = len(inside)
        if count < self._best_count:
            return
        if count > self._best_count:
            ev.score = -1.0  # more objects beat any mean confidence
            self._best_count = count
        boxes = np.asarray(ctx.objects.xyxy[inside], dtype=np.float32)
        enclosing = np.concatenate([boxes[:, :2].min(axis=0), boxes[:, 2:].max(axis=0)])
        self._offer_snapshot(
            ev,
            ctx,
            int(inside[np.argmax(ctx.confidence[inside])]),
            out,
            score=float(ctx.confidence[inside].mean()),
            box=enclosing,
            boxes=boxes,
            class_name=",".join(sorted(classes)),
        )

    def _end(self, key: Hashable, out: RuleOutput, reason: str, extra: dict[str, Any] | None = None) -> None:
        super()._end(key, out, reason, extra)
        self._best_count = 0
