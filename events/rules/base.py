"""What every rule shares: the frame context, outputs, per-track state and the event lifecycle.

A rule sees each analysed frame once, with the camera's confirmed tracked
objects (``tracker_id >= 0``), and appends to a ``RuleOutput``:

- ``EventTransition`` values: ``start`` when an event begins, throttled
  ``update`` when it changes (more tracks, a better snapshot, a new count) and
  ``end`` when it is over. All transitions of one event carry the same id.
  ``end_pts``/``end_time`` are the last moment the condition held, not the
  moment the end grace ran out;
- ``SnapshotCandidate`` values: a frame in which the event's object is seen
  with a higher confidence than in any earlier candidate of that event;
- ``Crossing`` values (line rules), for the traffic counts.

Rules never mutate ``Event.snapshot``: storage owns the snapshot key and must
keep it across later transitions of the same event (they carry ``None``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import numpy as np
import supervision as sv

from events.config import TimeWindow
from events.geometry import Anchor, anchor_points, as_polygon, points_in_polygon
from events.model import Event, EventTransition, EventType, Phase, new_event_id
from events.tracking import CLASS_NAME
from events.traffic import Crossing
from ingest.frame import Frame

# Per-track state of a track not seen for this long is dropped: the tracker
# gives up a lost id long before (its buffer is at most 30 s) and never reuses it.
TRACK_STATE_TTL_S = 60.0


def to_datetime(wall_time: float, tz: tzinfo) -> datetime:
    """Epoch seconds as a timezone-aware datetime in ``tz``."""
    return datetime.fromtimestamp(wall_time, tz)


class FrameContext:
    """One analysed frame of one camera and its confirmed tracked objects, shared by all rules.

    ``objects`` must carry ``tracker_id``, ``confidence`` and
    ``data["class_name"]`` (as ``ObjectTracker.update`` returns them).
    Anchor points and the local time are computed once per frame, on demand.
    """

    __slots__ = (
        "_anchors",
        "_local",
        "camera",
        "class_name",
        "confidence",
        "frame",
        "objects",
        "tracker_id",
        "tz",
    )

    def __init__(self, camera: str, frame: Frame, objects: sv.Detections, tz: tzinfo) -> None:
        self.camera = camera
        self.frame = frame
        self.objects = objects
        self.tz = tz
        n = len(objects)
        self.tracker_id: np.ndarray = (
            np.asarray(objects.tracker_id, dtype=np.int64) if n else np.zeros(0, dtype=np.int64)
        )
        self.confidence: np.ndarray = (
            np.asarray(objects.confidence, dtype=np.float64) if n else np.zeros(0, dtype=np.float64)
        )
        self.class_name: np.ndarray = (
            np.asarray(objects.data[CLASS_NAME]).astype(str) if n else np.zeros(0, dtype=str)
        )
        self._anchors: dict[Anchor, np.ndarray] = {}
        self._local: datetime | None = None

    def __len__(self) -> int:
        return len(self.tracker_id)

    @property
    def pts(self) -> float:
        return self.frame.pts

    @property
    def wall_time(self) -> float:
        return self.frame.wall_time

    @property
    def local_time(self) -> datetime:
        """The frame's wall-clock time in the camera's time zone."""
        if self._local is None:
            self._local = to_datetime(self.frame.wall_time, self.tz)
        return self._local

    def anchors(self, anchor: Anchor) -> np.ndarray:
        """Anchor points [N, 2] of the objects' boxes."""
        points = self._anchors.get(anchor)
        if points is None:
            points = anchor_points(self.objects.xyxy, anchor) if len(self) else np.zeros((0, 2))
            self._anchors[anchor] = points
        return points


MAX_TRACK_IDS = 100  # track ids listed in one event; beyond, data.track_count says how many

_NO_BOXES = np.zeros((0, 4), dtype=np.float32)
_NO_BOXES.flags.writeable = False


@dataclass(frozen=True, slots=True, eq=False)
class SnapshotCandidate:
    """A frame worth keeping as an event's picture: its object seen better than ever before.

    ``image`` is the frame's own picture, held by reference and never copied:
    whoever produces frames must not write into a frame's image after handing
    it to the events stage (storage encodes it later, possibly on another
    thread). ``box`` is what to highlight (the object, or the rectangle
    enclosing a crowd); ``boxes`` are other boxes worth outlining, e.g. each
    member of a crowd ([0, 4] for single-object events).
    """

    event_id: str
    camera: str
    rule: str
    frame_index: int
    pts: float
    wall_time: float
    image: np.ndarray
    box: np.ndarray  # xyxy float32 [4], source-frame pixels
    confidence: float
    class_name: str
    track_id: int | None
    boxes: np.ndarray  # xyxy float32 [K, 4], not including ``box``
    evidence: bool = True  # a security event's picture (kept longest when the upload spool fills)


@dataclass(slots=True)
class RuleOutput:
    """What the rules of one camera produced for one frame, in emission order."""

    transitions: list[EventTransition] = field(default_factory=list)
    snapshots: list[SnapshotCandidate] = field(default_factory=list)
    crossings: list[Crossing] = field(default_factory=list)


class TrackTable:
    """Per-track state as columns of numpy arrays, rows kept sorted by tracker id.

    Lookups of all of a frame's ids are one ``searchsorted``; rules update
    whole columns with fancy indexing instead of looping over tracks.
    """

    def __init__(self, **columns: tuple[Any, Any]) -> None:
        """``columns``: name -> (dtype, default value of a new row)."""
        self._spec = columns
        self.ids = np.zeros(0, dtype=np.int64)
        self.cols: dict[str, np.ndarray] = {name: np.zeros(0, dtype=dt) for name, (dt, _) in columns.items()}

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.cols[name]

    def find(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows, found): ``rows[i]`` is the row of ``ids[i]`` where ``found[i]``."""
        ids = np.asarray(ids, dtype=np.int64)
        if len(self.ids) == 0:
            return np.zeros(len(ids), dtype=np.intp), np.zeros(len(ids), dtype=bool)
        rows = np.minimum(np.searchsorted(self.ids, ids), len(self.ids) - 1)
        return rows, self.ids[rows] == ids

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """Rows of ``ids`` (unique), adding rows with default values for new ids."""
        ids = np.asarray(ids, dtype=np.int64)
        rows, found = self.find(ids)
        if found.all():
            return rows
        new = np.unique(ids[~found])
        all_ids = np.concatenate([self.ids, new])
        order = np.argsort(all_ids, kind="stable")
        self.ids = all_ids[order]
        for name, (dt, default) in self._spec.items():
            self.cols[name] = np.concatenate([self.cols[name], np.full(len(new), default, dtype=dt)])[order]
        return self.find(ids)[0]

    def keep(self, mask: np.ndarray) -> None:
        """Drop the rows where ``mask`` is False."""
        self.ids = self.ids[mask]
        for name in self.cols:
            self.cols[name] = self.cols[name][mask]

    def clear(self) -> None:
        self.keep(np.zeros(len(self.ids), dtype=bool))


@dataclass(slots=True, eq=False)
class OpenEvent:
    """The mutable working state of an event between its start and end transitions."""

    id: str
    start_pts: float
    start_wall: float
    last_active_pts: float
    last_active_wall: float
    last_emit_pts: float
    track_ids: set[int] = field(default_factory=set)
    classes: set[str] = field(default_factory=set)
    score: float = -1.0  # confidence of the best snapshot so far; -1 before any
    data: dict[str, Any] = field(default_factory=dict)
    dirty: bool = False


class Rule(ABC):
    """A configured rule on one camera; subclasses implement ``update``."""

    event_type: ClassVar[EventType]
    # Whether the rule's pictures are evidence of an incident (kept longest when space runs out).
    evidence: ClassVar[bool] = True

    def __init__(self, config: Any, camera: str, tz: tzinfo) -> None:
        self.config = config
        self.name: str = config.name
        self.camera = camera
        self.tz = tz
        self._classes = np.array(config.classes, dtype=str) if config.classes else None
        self._min_confidence: float | None = config.min_confidence
        # Open events keyed by what identifies them in the rule (a track id, or
        # None for rules with one episode at a time).
        self._open: dict[Hashable, OpenEvent] = {}

    @abstractmethod
    def update(self, ctx: FrameContext, out: RuleOutput) -> None:
        """Evaluate one frame and append transitions, snapshots and crossings to ``out``."""

    def close(self, out: RuleOutput, reason: str = "closed", extra: dict[str, Any] | None = None) -> None:
        """End every open event now and forget all state (shutdown, camera offline, stream restart).

        The ends are stamped with each event's last active moment; what the
        rule sees next starts afresh (dwell, pending crowds, line sides).
        """
        for key in list(self._open):
            self._end(key, out, reason, extra)
        self.reset()

    def reset(self) -> None:
        """Forget all state without emitting anything."""
        self._open.clear()

    @property
    def open_event_ids(self) -> list[str]:
        return [ev.id for ev in self._open.values()]

    def eligible(self, ctx: FrameContext) -> np.ndarray:
        """Objects of the configured classes and confidence, bool [N]."""
        mask = np.ones(len(ctx), dtype=bool)
        if self._classes is not None:
            mask &= np.isin(ctx.class_name, self._classes)
        if self._min_confidence is not None:
            mask &= ctx.confidence >= self._min_confidence
        return mask

    # Lifecycle helpers -------------------------------------------------

    def split_overlong(self, ctx: FrameContext, out: RuleOutput, max_s: float) -> None:
        """End every open event older than ``max_s`` (``end_reason: "max_duration"``) and start its
        continuation (``data.continues``: the ended event's id), so an episode that lasts for hours
        becomes events of bounded length, track lists and payloads."""
        for key, ev in list(self._open.items()):
            if ctx.pts - ev.start_pts < max_s:
                continue
            self._end(key, out, "max_duration")
            nxt = self._open_event(key, ctx)
            nxt.classes = set(ev.classes)
            # A few tracks go on (a loiterer's own id); a crowd's are re-added as they are seen.
            nxt.track_ids = set(ev.track_ids) if len(ev.track_ids) <= MAX_TRACK_IDS else set()
            nxt.data = {k: v for k, v in ev.data.items() if k not in ("end_reason", "track_count")}
            nxt.data["continues"] = ev.id
            self._emit_start(nxt, out)

    def _event(self, ev: OpenEvent, *, ended: bool) -> Event:
        data = dict(ev.data)
        track_ids = sorted(ev.track_ids)
        if len(track_ids) > MAX_TRACK_IDS:
            # A busy zone for an hour: the payload keeps a count and the first ids, not all of them.
            data["track_count"] = len(track_ids)
            track_ids = track_ids[:MAX_TRACK_IDS]
        return Event(
            id=ev.id,
            camera=self.camera,
            rule=self.name,
            type=self.event_type,
            classes=sorted(ev.classes),
            track_ids=track_ids,
            start_pts=ev.start_pts,
            end_pts=ev.last_active_pts if ended else None,
            start_time=to_datetime(ev.start_wall, self.tz),
            end_time=to_datetime(ev.last_active_wall, self.tz) if ended else None,
            active=not ended,
            score=round(max(ev.score, 0.0), 4),  # float32 confidences print as 0.800000011920929
            data=data,
        )

    def _open_event(self, key: Hashable, ctx: FrameContext) -> OpenEvent:
        """Create an event's working state; call ``_emit_start`` once it is filled in."""
        ev = OpenEvent(
            id=new_event_id(),
            start_pts=ctx.pts,
            start_wall=ctx.wall_time,
            last_active_pts=ctx.pts,
            last_active_wall=ctx.wall_time,
            last_emit_pts=ctx.pts,
        )
        self._open[key] = ev
        return ev

    def _emit_start(self, ev: OpenEvent, out: RuleOutput) -> None:
        ev.dirty = False
        out.transitions.append(EventTransition(phase=Phase.START, event=self._event(ev, ended=False)))

    def _emit_updates(self, ctx: FrameContext, out: RuleOutput) -> None:
        """An update for each changed open event whose last transition is old enough."""
        interval = getattr(self.config, "update_interval_s", 0.0)
        for ev in self._open.values():
            if ev.dirty and ctx.pts - ev.last_emit_pts >= interval:
                self._before_emit(ev, ctx)
                ev.dirty = False
                ev.last_emit_pts = ctx.pts
                out.transitions.append(
                    EventTransition(phase=Phase.UPDATE, event=self._event(ev, ended=False))
                )

    def _before_emit(self, ev: OpenEvent, ctx: FrameContext | None) -> None:  # noqa: B027 - optional hook
        """Hook to refresh ``ev.data`` right before a transition is built."""

    def _end(self, key: Hashable, out: RuleOutput, reason: str, extra: dict[str, Any] | None = None) -> None:
        ev = self._open.pop(key)
        self._before_emit(ev, None)
        ev.data["end_reason"] = reason
        if extra:
            ev.data.update(extra)
        out.transitions.append(EventTransition(phase=Phase.END, event=self._event(ev, ended=True)))

    def _offer_snapshot(
        self,
        ev: OpenEvent,
        ctx: FrameContext,
        row: int,
        out: RuleOutput,
        *,
        score: float | None = None,
        box: np.ndarray | None = None,
        boxes: np.ndarray | None = None,
        class_name: str | None = None,
    ) -> bool:
        """Emit a candidate if this frame beats the event's best; ``row`` is the object's row.

        ``score`` defaults to the object's confidence; crowd-like rules pass
        their own score and boxes.
        """
        value = float(ctx.confidence[row]) if score is None else score
        if value <= ev.score:
            return False
        ev.score = value
        ev.dirty = True
        obj_box = np.asarray(ctx.objects.xyxy[row], dtype=np.float32)
        out.snapshots.append(
            SnapshotCandidate(
                event_id=ev.id,
                camera=self.camera,
                rule=self.name,
                frame_index=ctx.frame.index,
                pts=ctx.pts,
                wall_time=ctx.wall_time,
                image=ctx.frame.image,
                box=obj_box if box is None else np.asarray(box, dtype=np.float32),
                confidence=value,
                class_name=str(ctx.class_name[row]) if class_name is None else class_name,
                track_id=int(ctx.tracker_id[row]),
                boxes=_NO_BOXES if boxes is None else np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
                evidence=self.evidence,
            )
        )
        return True


class ZoneRule(Rule):
    """A rule on a polygon, optionally armed only during some wall-clock hours."""

    def __init__(self, config: Any, camera: str, tz: tzinfo) -> None:
        super().__init__(config, camera, tz)
        self.polygon = as_polygon(config.polygon)
        self.anchor: Anchor = config.anchor
        self.end_after_s: float = config.end_after_s
        self._windows: list[TimeWindow] | None = config.active_hours
        self._hours_tz: tzinfo | None = ZoneInfo(config.timezone) if config.timezone else None

    def armed(self, ctx: FrameContext) -> bool:
        """Whether the frame's wall-clock time is within the active hours."""
        if not self._windows:
            return True
        local = ctx.local_time if self._hours_tz is None else to_datetime(ctx.wall_time, self._hours_tz)
        minute = local.hour * 60 + local.minute + (local.second + local.microsecond / 1e6) / 60.0
        return any(w.contains(minute) for w in self._windows)

    def in_zone(self, ctx: FrameContext) -> np.ndarray:
        """Eligible objects whose anchor is inside the polygon, bool [N]; all False when disarmed."""
        if len(ctx) == 0 or not self.armed(ctx):
            return np.zeros(len(ctx), dtype=bool)
        mask = self.eligible(ctx)
        if mask.any():
            mask &= points_in_polygon(ctx.anchors(self.anchor), self.polygon)
        return mask
