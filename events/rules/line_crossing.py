"""Line crossing: count tracked objects whose anchor crosses a directed segment.

Semantics (``LineCrossingConfig``):

- Side: the signed distance ``s`` of the anchor to the line through start->end,
  positive on the right-hand side as seen on screen. ``in`` is a crossing from
  the right-hand side to the left-hand side, ``out`` the opposite (the same
  convention as ``supervision.LineZone``: for a line drawn left to right,
  moving up the picture is ``in``).
- Hysteresis: a track is *on* a side once its anchor is more than
  ``hysteresis_px`` from the line; inside that band its side does not change.
  A crossing is a change of side, so jitter of the anchor around the line, of
  an amplitude up to ``hysteresis_px``, never counts.
- Segment extent: between the two sides, the anchor's path (straight between
  consecutive observations, across gaps too) must pass the line between its
  ends. The most recent passage counts: going around an end of the segment
  changes the side without counting.
- Once per track: each track counts at most once per line, at its first
  crossing; a track that later comes back is not counted again (id switches
  and U-turns at a gate would otherwise inflate counts).
- Filters: the class and confidence filters apply to the detection of the frame
  that completes the crossing; if it does not pass, the crossing stays pending
  and counts at the next frame on that side whose detection passes.

Every crossing is a ``line_crossing`` event whose ``start`` and ``end``
transitions come in the same frame, with one snapshot candidate, and a
``Crossing`` for the traffic counts.

Supervision's ``LineZone`` was considered: it counts every crossing (no once
per track), its debounce is a number of frames rather than a distance, it
keys counts by class id, and it loops over boxes in Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo

import numpy as np

from events.config import LineCrossingConfig
from events.geometry import line_coordinates
from events.model import EventTransition, EventType, Phase
from events.rules.base import TRACK_STATE_TTL_S, FrameContext, Rule, RuleOutput, TrackTable
from events.traffic import Crossing

IN, OUT = "in", "out"


@dataclass(slots=True)
class CrossingState:
    """Per-track hysteresis state, one entry per track (arrays of equal length)."""

    prev_u: np.ndarray  # float64: position along the line at the last observation
    prev_s: np.ndarray  # float64: signed distance at the last observation
    seen: np.ndarray  # bool: observed before
    side: np.ndarray  # int8: -1 left, +1 right, 0 not yet beyond the band
    armed: np.ndarray  # bool: the path passed the line within the segment since leaving `side`
    counted: np.ndarray  # bool: this track has been counted on this line


def crossing_step(
    state: CrossingState,
    u: np.ndarray,
    s: np.ndarray,
    eligible: np.ndarray,
    length: float,
    hysteresis_px: float,
) -> np.ndarray:
    """Advance the state by one observation per track; return the crossings.

    Returns int8 [N]: -1 for a crossing to the left side (``in``), +1 to the
    right side (``out``), 0 for none. ``state`` is updated in place
    (``prev_*``/``seen`` included).
    """
    passage = state.seen & ((s > 0) != (state.prev_s > 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        # Where the straight path from the previous anchor crosses the line.
        frac = state.prev_s / (state.prev_s - s)
        u_cross = state.prev_u + (u - state.prev_u) * frac
    through = passage & (u_cross >= 0.0) & (u_cross <= length)
    armed = np.where(passage, through, state.armed)

    beyond = np.abs(s) > hysteresis_px
    new_side = np.where(beyond, np.sign(s), 0).astype(np.int8)
    candidate = beyond & (state.side != 0) & (new_side != state.side) & armed & ~state.counted
    crossed = candidate & eligible
    # A filtered-out crossing stays pending: the side is not committed yet.
    commit = beyond & ~(candidate & ~eligible)

    state.side = np.where(commit, new_side, state.side).astype(np.int8)
    state.armed = armed & ~commit
    state.counted = state.counted | crossed
    state.prev_u = np.asarray(u, dtype=np.float64)
    state.prev_s = np.asarray(s, dtype=np.float64)
    state.seen = np.ones(len(s), dtype=bool)
    return np.where(crossed, new_side, 0).astype(np.int8)


class LineCrossingRule(Rule):
    event_type = EventType.LINE_CROSSING
    evidence = False  # a passer-by counted, not an incident

    def __init__(self, config: LineCrossingConfig, camera: str, tz: tzinfo) -> None:
        super().__init__(config, camera, tz)
        self.config: LineCrossingConfig = config
        self.start = np.asarray(config.start, dtype=np.float64)
        self.end = np.asarray(config.end, dtype=np.float64)
        self.length = float(np.hypot(*(self.end - self.start)))
        self._tracks = self._new_table()

    @staticmethod
    def _new_table() -> TrackTable:
        return TrackTable(
            prev_u=(np.float64, 0.0),
            prev_s=(np.float64, 0.0),
            seen=(bool, False),
            side=(np.int8, 0),
            armed=(bool, False),
            counted=(bool, False),
            last_pts=(np.float64, 0.0),
        )

    def reset(self) -> None:
        super().reset()
        self._tracks = self._new_table()

    def update(self, ctx: FrameContext, out: RuleOutput) -> None:
        if len(ctx):
            self._step(ctx, out)
        t = self._tracks
        stale = ctx.pts - t["last_pts"] > TRACK_STATE_TTL_S
        if stale.any():
            t.keep(~stale)

    def _step(self, ctx: FrameContext, out: RuleOutput) -> None:
        u, s = line_coordinates(ctx.anchors(self.config.anchor), self.start, self.end)
        t = self._tracks
        rows = t.rows(ctx.tracker_id)
        state = CrossingState(
            prev_u=t["prev_u"][rows],
            prev_s=t["prev_s"][rows],
            seen=t["seen"][rows],
            side=t["side"][rows],
            armed=t["armed"][rows],
            counted=t["counted"][rows],
        )
        crossed = crossing_step(state, u, s, self.eligible(ctx), self.length, self.config.hysteresis_px)
        for name in ("prev_u", "prev_s", "seen", "side", "armed", "counted"):
            t[name][rows] = getattr(state, name)
        t["last_pts"][rows] = ctx.pts
        # Crossings are rare: a loop over them (not over boxes) builds the records.
        for row in np.flatnonzero(crossed):
            self._emit(ctx, int(row), IN if crossed[row] < 0 else OUT, out)

    def _emit(self, ctx: FrameContext, row: int, direction: str, out: RuleOutput) -> None:
        class_name = str(ctx.class_name[row])
        ev = self._open_event(None, ctx)
        ev.track_ids.add(int(ctx.tracker_id[row]))
        ev.classes.add(class_name)
        ev.data["direction"] = direction
        if self.config.snapshots:  # off by default: a count needs no picture of each passer-by
            self._offer_snapshot(ev, ctx, row, out)
        self._emit_start(ev, out)
        del self._open[None]
        out.transitions.append(EventTransition(phase=Phase.END, event=self._event(ev, ended=True)))
        out.crossings.append(
            Crossing(
                camera=self.camera,
                line=self.name,
                class_name=class_name,
                direction=direction,
                wall_time=ctx.wall_time,
            )
        )
