"""Per-lane traffic of one camera: counts, speeds, occupancy, stopped and wrong-way vehicles.

``CameraTraffic.process`` takes each analysed frame's confirmed tracks and

- measures every track's speed on the road plane (``events.speed``);
- follows each vehicle's visit of each lane zone: when it leaves (after a short
  grace, so a track flickering at the border is not counted twice) it is counted
  once, by class and direction (``forward`` with the lane's configured direction,
  ``reverse`` against it, ``unknown`` if it moved less than a metre along it or the
  lane has no direction), and its median speed joins the minute's speed sample;
- sums occupancy: the share of stream time at least one vehicle was on the lane;
- starts a ``wrong_way`` event when a vehicle keeps moving against the lane
  (more than 120 degrees off) for ``wrong_way_after_s``, a ``stopped_vehicle``
  event when one stands in a no-stopping zone for ``stopped_after_s``;
- keeps each lane's live state (speed over the congestion window) for the
  segment board (``events.congestion``).

Counts also leave as ``TrafficCount`` rows (line = the lane's name), so
``/traffic`` serves them like line crossings. Not thread-safe: one per camera loop.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any, Protocol

import numpy as np
import supervision as sv

from events.geometry import as_polygon, points_in_polygon
from events.model import Event, EventTransition, EventType, Phase, TrafficCount
from events.speed import SpeedEstimator, bottom_centers
from events.tracking import CLASS_NAME
from events.traffic import Crossing, TrafficAggregator, minute_floor
from events.traffic_config import CameraTrafficConfig, CongestionConfig, LaneConfig
from ingest.frame import Frame

# A vehicle out of a lane zone for this long has left it (shorter gaps are box jitter or a missed frame).
VISIT_GRACE_S = 1.0
# Frames further apart than this do not add occupancy time (the camera paused or reconnected).
MAX_FRAME_GAP_S = 1.0
WRONG_WAY_COS = -0.5  # more than 120 degrees against the lane
# Free-flow speed is learned only from vehicles on a lane occupied at most this share of the window.
LEARN_QUIET_OCCUPANCY = 0.15


@dataclass(frozen=True, slots=True)
class LaneMinute:
    """One lane during one wall-clock minute."""

    camera: str
    lane: str
    minute: datetime
    counts: dict[str, dict[str, int]]  # class -> direction -> vehicles
    vehicles: int
    mean_speed_kmh: float | None
    p85_speed_kmh: float | None
    occupancy: float  # share of the observed time with a vehicle on the lane
    observed_s: float
    stopped_vehicles: int
    wrong_way: int

    def to_json(self) -> dict[str, Any]:
        return {
            "minute": self.minute.isoformat(),
            "counts": self.counts,
            "vehicles": self.vehicles,
            "mean_speed_kmh": _round(self.mean_speed_kmh),
            "p85_speed_kmh": _round(self.p85_speed_kmh),
            "occupancy": round(self.occupancy, 3),
            "stopped_vehicles": self.stopped_vehicles,
            "wrong_way": self.wrong_way,
        }


@dataclass(frozen=True, slots=True)
class LaneLive:
    """A lane's state now, for congestion levels."""

    camera: str
    lane: str
    measured_at: float  # epoch seconds of the frame
    speed_kmh: float | None  # mean over the congestion window; None: no vehicle measured in it
    free_flow_kmh: float | None  # configured or learned; None: still learning
    occupancy: float  # over the congestion window
    vehicles_in_zone: int


@dataclass(frozen=True, slots=True, eq=False)
class TrafficOutput:
    transitions: list[EventTransition]
    counts: list[TrafficCount]
    minutes: list[LaneMinute]
    live: list[LaneLive]


class TrafficReport(Protocol):
    """Where a camera's lane states go after each frame (``TrafficBoard.report``)."""

    def __call__(self, *, camera: str, output: TrafficOutput) -> None: ...


def _round(value: float | None, ndigits: int = 1) -> float | None:
    return None if value is None else round(value, ndigits)


@dataclass(slots=True)
class _Visit:
    class_name: str
    first: tuple[float, float]
    last: tuple[float, float]
    last_inside: float  # pts
    speeds: list[float] = field(default_factory=list)
    against_since: float | None = None
    wrong_way: Event | None = None


@dataclass(slots=True)
class _MinuteAcc:
    minute: int
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    speeds: list[float] = field(default_factory=list)
    occupied_s: float = 0.0
    observed_s: float = 0.0
    stopped: int = 0
    wrong_way: int = 0


class _Lane:
    def __init__(self, config: LaneConfig, camera: CameraTrafficConfig) -> None:
        self.config = config
        self.name = config.name
        self.polygon = as_polygon(config.polygon)
        self.classes = frozenset(config.classes)
        self.direction: np.ndarray | None = None
        if config.direction is not None:
            ends = camera.calibration.plane().to_world(np.asarray(config.direction))
            vec = ends[1] - ends[0]
            self.direction = vec / np.linalg.norm(vec)
        self.visits: dict[int, _Visit] = {}
        self.acc: _MinuteAcc | None = None
        self.window: deque[tuple[float, float | None, bool]] = deque()  # (pts, median speed, occupied)
        self.learned: deque[float] = deque(maxlen=2000)


@dataclass(slots=True)
class _Standing:
    since: float  # pts the vehicle was first seen slow in the zone
    last_inside: float
    event: Event | None = None


class CameraTraffic:
    """Speeds, lane statistics and traffic events of one camera."""

    def __init__(
        self, camera: str, config: CameraTrafficConfig, congestion: CongestionConfig, tz: tzinfo
    ) -> None:
        self.camera = camera
        self.config = config
        self.congestion = congestion
        self.tz = tz
        sp = config.speed
        self.speeds = SpeedEstimator(
            config.calibration.plane(),
            window_s=sp.window_s,
            min_span_s=sp.min_span_s,
            min_samples=sp.min_samples,
            max_speed_kmh=sp.max_speed_kmh,
        )
        self.lanes = [_Lane(lane, config) for lane in config.lanes]
        self.zones = [(z, as_polygon(z.polygon), frozenset(z.classes)) for z in config.no_stopping]
        self._standing: dict[tuple[str, int], _Standing] = {}
        self._counts = TrafficAggregator(tz)
        self._last_pts: float | None = None

    # -- per frame ----------------------------------------------------------------

    def process(self, frame: Frame, tracked: sv.Detections) -> TrafficOutput:
        pts, wall = frame.pts, frame.wall_time
        transitions: list[EventTransition] = []
        minutes: list[LaneMinute] = []
        if self._last_pts is not None and pts < self._last_pts:
            self._finish_all(wall, transitions, minutes)  # the stream restarted: visits cannot continue
        dt = 0.0 if self._last_pts is None else min(max(pts - self._last_pts, 0.0), MAX_FRAME_GAP_S)
        self._last_pts = pts

        ids = np.asarray(tracked.tracker_id if tracked.tracker_id is not None else [], dtype=np.int64)
        anchors = bottom_centers(tracked.xyxy) if len(ids) else np.zeros((0, 2))
        classes = tracked.data.get(CLASS_NAME, np.zeros(len(ids), dtype=str)) if len(ids) else []
        measured = self.speeds.update(ids, anchors, pts)
        rows = list(zip(ids.tolist(), [str(c) for c in classes], strict=True))

        minute = minute_floor(wall)
        for lane in self.lanes:
            if lane.acc is not None and lane.acc.minute != minute:
                minutes.append(self._minute_row(lane, lane.acc))
                lane.acc = None
            if lane.acc is None:
                lane.acc = _MinuteAcc(minute)
            ok = np.fromiter((c in lane.classes for _, c in rows), dtype=bool, count=len(rows))
            inside = points_in_polygon(anchors, lane.polygon) & ok if len(rows) else np.zeros(0, bool)
            lane.acc.observed_s += dt
            if inside.any():
                lane.acc.occupied_s += dt
            frame_speeds: list[float] = []
            for row in np.flatnonzero(inside).tolist():
                tid, cls = rows[row]
                pos = (float(measured.world[row, 0]), float(measured.world[row, 1]))
                visit = lane.visits.get(tid)
                if visit is None:
                    visit = lane.visits[tid] = _Visit(cls, pos, pos, pts)
                visit.last, visit.last_inside = pos, pts
                speed = float(measured.speed_kmh[row])
                if not math.isnan(speed):
                    visit.speeds.append(speed)
                    frame_speeds.append(speed)
                    self._check_wrong_way(
                        lane, tid, visit, measured.velocity[row], speed, pts, wall, transitions
                    )
            for tid in [t for t, v in lane.visits.items() if pts - v.last_inside > VISIT_GRACE_S]:
                self._finish_visit(lane, tid, lane.visits.pop(tid), pts, wall, transitions)
            lane.window.append(
                (pts, float(np.median(frame_speeds)) if frame_speeds else None, bool(inside.any()))
            )
            while lane.window and lane.window[0][0] < pts - self.congestion.window_s:
                lane.window.popleft()

        self._check_standing(rows, anchors, measured.speed_kmh, pts, wall, transitions)
        return TrafficOutput(
            transitions=transitions,
            counts=self._counts.flush_all(),
            minutes=minutes,
            live=[self._live(lane, wall) for lane in self.lanes],
        )

    def close(self, wall: float) -> TrafficOutput:
        """Finish every visit and open event and flush the current minutes (camera offline, shutdown)."""
        transitions: list[EventTransition] = []
        minutes: list[LaneMinute] = []
        self._finish_all(wall, transitions, minutes)
        return TrafficOutput(transitions, self._counts.flush_all(), minutes, [])

    def _finish_all(self, wall: float, transitions: list[EventTransition], minutes: list[LaneMinute]) -> None:
        pts = self._last_pts or 0.0
        for lane in self.lanes:
            for tid in list(lane.visits):
                self._finish_visit(lane, tid, lane.visits.pop(tid), pts, wall, transitions)
            if lane.acc is not None:
                minutes.append(self._minute_row(lane, lane.acc))
                lane.acc = None
            lane.window.clear()
        for key in list(self._standing):
            self._end_standing(key, self._standing.pop(key), pts, wall, transitions)
        self.speeds.reset()
        self._last_pts = None

    # -- lanes --------------------------------------------------------------------

    def _direction_of(self, lane: _Lane, visit: _Visit) -> str:
        if lane.direction is None:
            return "unknown"
        along = float(np.dot(np.subtract(visit.last, visit.first), lane.direction))
        if abs(along) < 1.0:
            return "unknown"
        return "forward" if along > 0 else "reverse"

    def _finish_visit(
        self, lane: _Lane, tid: int, visit: _Visit, pts: float, wall: float, out: list[EventTransition]
    ) -> None:
        direction = self._direction_of(lane, visit)
        acc = lane.acc if lane.acc is not None else _MinuteAcc(minute_floor(wall))
        acc.counts[(visit.class_name, direction)] += 1
        self._counts.add(Crossing(self.camera, lane.name, visit.class_name, direction, wall))
        if visit.speeds:
            speed = float(np.median(visit.speeds))
            acc.speeds.append(speed)
            if self._quiet(lane, wall):
                lane.learned.append(speed)
        if visit.wrong_way is not None:
            out.append(self._end(visit.wrong_way, pts, wall))

    def _quiet(self, lane: _Lane, wall: float) -> bool:
        local = datetime.fromtimestamp(wall, self.tz)
        minute_of_day = local.hour * 60 + local.minute + local.second / 60.0
        if not any(w.contains(minute_of_day) for w in self.congestion.quiet_hours):
            return False
        window = lane.window
        if not window:
            return True
        # Occupied time over the whole window (a window still filling counts its missing part as empty).
        span = min(1.0, (window[-1][0] - window[0][0]) / self.congestion.window_s)
        return sum(occ for _, _, occ in window) / len(window) * span <= LEARN_QUIET_OCCUPANCY

    def _check_wrong_way(
        self,
        lane: _Lane,
        tid: int,
        visit: _Visit,
        velocity: np.ndarray,
        speed: float,
        pts: float,
        wall: float,
        out: list[EventTransition],
    ) -> None:
        if lane.direction is None or visit.wrong_way is not None:
            return
        cos = float(np.dot(velocity, lane.direction)) / max(float(np.linalg.norm(velocity)), 1e-9)
        if speed < self.config.wrong_way_min_kmh or cos > WRONG_WAY_COS:
            visit.against_since = None
            return
        if visit.against_since is None:
            visit.against_since = pts
        if pts - visit.against_since >= self.config.wrong_way_after_s - 1e-9:
            event = self._event(
                EventType.WRONG_WAY, lane.name, visit.class_name, tid, visit.against_since, wall,
                {"lane": lane.name, "speed_kmh": round(speed, 1)},
            )  # fmt: skip
            visit.wrong_way = event
            if lane.acc is not None:
                lane.acc.wrong_way += 1
            out.append(EventTransition(phase=Phase.START, event=event))

    def _minute_row(self, lane: _Lane, acc: _MinuteAcc) -> LaneMinute:
        counts: dict[str, dict[str, int]] = {}
        for (cls, direction), n in sorted(acc.counts.items()):
            counts.setdefault(cls, {})[direction] = n
        speeds = np.asarray(acc.speeds)
        return LaneMinute(
            camera=self.camera,
            lane=lane.name,
            minute=datetime.fromtimestamp(acc.minute, self.tz),
            counts=counts,
            vehicles=sum(acc.counts.values()),
            mean_speed_kmh=float(speeds.mean()) if len(speeds) else None,
            p85_speed_kmh=float(np.percentile(speeds, 85)) if len(speeds) else None,
            occupancy=acc.occupied_s / acc.observed_s if acc.observed_s > 0 else 0.0,
            observed_s=acc.observed_s,
            stopped_vehicles=acc.stopped,
            wrong_way=acc.wrong_way,
        )

    def _live(self, lane: _Lane, wall: float) -> LaneLive:
        speeds = [s for _, s, _ in lane.window if s is not None]
        occupied = [occ for _, _, occ in lane.window]
        free_flow = lane.config.free_flow_kmh
        if free_flow is None and len(lane.learned) >= self.congestion.learn_min_samples:
            free_flow = float(np.percentile(np.asarray(lane.learned), 85))
        return LaneLive(
            camera=self.camera,
            lane=lane.name,
            measured_at=wall,
            speed_kmh=float(np.mean(speeds)) if speeds else None,
            free_flow_kmh=free_flow,
            occupancy=sum(occupied) / len(occupied) if occupied else 0.0,
            vehicles_in_zone=len([v for v in lane.visits.values() if v.last_inside == self._last_pts]),
        )

    # -- no-stopping zones -------------------------------------------------------------

    def _check_standing(
        self,
        rows: list[tuple[int, str]],
        anchors: np.ndarray,
        speeds: np.ndarray,
        pts: float,
        wall: float,
        out: list[EventTransition],
    ) -> None:
        for zone, polygon, classes in self.zones:
            inside = points_in_polygon(anchors, polygon) if len(rows) else np.zeros(0, bool)
            for row in np.flatnonzero(inside).tolist():
                tid, cls = rows[row]
                if cls not in classes:
                    continue
                key = (zone.name, tid)
                slow = not math.isnan(speeds[row]) and speeds[row] <= self.config.stopped_speed_kmh
                standing = self._standing.get(key)
                if not slow:
                    # Moving again: an open event ends; a vehicle merely slowing down starts over.
                    if standing is not None and (
                        standing.event is None or speeds[row] > 2 * self.config.stopped_speed_kmh
                    ):
                        self._end_standing(key, self._standing.pop(key), pts, wall, out)
                    continue
                if standing is None:
                    standing = self._standing[key] = _Standing(since=pts, last_inside=pts)
                standing.last_inside = pts
                if standing.event is None and pts - standing.since >= self.config.stopped_after_s - 1e-9:
                    standing.event = self._event(
                        EventType.STOPPED_VEHICLE, zone.name, cls, tid, standing.since, wall,
                        {"zone": zone.name, "stopped_s": round(pts - standing.since, 1)},
                    )  # fmt: skip
                    out.append(EventTransition(phase=Phase.START, event=standing.event))
                    for lane in self.lanes:
                        if (
                            lane.acc is not None
                            and points_in_polygon(anchors[row : row + 1], lane.polygon)[0]
                        ):
                            lane.acc.stopped += 1
        for key in [k for k, s in self._standing.items() if pts - s.last_inside > VISIT_GRACE_S]:
            self._end_standing(key, self._standing.pop(key), pts, wall, out)

    def _end_standing(
        self, key: tuple[str, int], standing: _Standing, pts: float, wall: float, out: list[EventTransition]
    ) -> None:
        if standing.event is not None:
            out.append(self._end(standing.event, standing.last_inside, wall))

    # -- events ---------------------------------------------------------------------------

    def _event(
        self,
        type_: EventType,
        rule: str,
        cls: str,
        tid: int,
        start_pts: float,
        wall: float,
        data: dict[str, Any],
    ) -> Event:
        return Event(
            camera=self.camera,
            rule=rule,
            type=type_,
            classes=[cls],
            track_ids=[tid],
            start_pts=start_pts,
            start_time=datetime.fromtimestamp(wall, self.tz),
            data=data,
        )

    def _end(self, event: Event, pts: float, wall: float) -> EventTransition:
        ended = event.model_copy(
            update={"end_pts": pts, "end_time": datetime.fromtimestamp(wall, self.tz), "active": False}
        )
        return EventTransition(phase=Phase.END, event=ended)
