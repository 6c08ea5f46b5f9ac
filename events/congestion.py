"""Congestion levels per lane and road segment, with staleness, for signage and apps.

Levels use the DATEX II ``trafficStatus`` vocabulary: ``freeFlow``, ``heavy``,
``congested``, ``stationary`` and ``unknown``. A lane's level comes from its
current speed (the mean over the congestion window) as a share of its free-flow
speed; an empty lane on a healthy camera is ``freeFlow``. A segment's level comes
from the mean share of its lanes. Both pass through :class:`LevelHysteresis`.

Staleness: a camera is healthy while it delivers analysed frames (the newest at
most ``stale_after_s`` old) and has no open ``camera_offline``, ``camera_blocked``,
``camera_frozen`` or ``camera_moved`` event. A lane of an unhealthy camera is
``unknown`` and its speed is not shown; a segment with no healthy lane is
``unknown`` ("không có dữ liệu"). Every value carries its age and the share of
the last ``uptime_window_s`` its cameras were healthy (Telraam's ``uptime``).

:class:`TrafficBoard` gathers lane reports from camera threads (a dict update
under a lock: it never blocks a camera), recomputes every ``tick_s`` in its own
thread, and publishes the rendered state to a :class:`~events.feed.StateFeed`
when it changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from enum import StrEnum
from typing import Any

from events.feed import StateFeed
from events.lanes import LaneLive, LaneMinute, TrafficOutput
from events.model import EventTransition, EventType, Phase
from events.storage.bus import EventBus, Subscription
from events.traffic_config import CongestionConfig, TrafficConfig

log = logging.getLogger(__name__)


class Level(StrEnum):
    FREE_FLOW = "freeFlow"
    HEAVY = "heavy"
    CONGESTED = "congested"
    STATIONARY = "stationary"
    UNKNOWN = "unknown"


LEVEL_LABELS: dict[Level, tuple[str, str]] = {
    Level.FREE_FLOW: ("Thông thoáng", "Free flow"),
    Level.HEAVY: ("Đông xe", "Heavy"),
    Level.CONGESTED: ("Ùn tắc", "Congested"),
    Level.STATIONARY: ("Kẹt cứng", "Stationary"),
    Level.UNKNOWN: ("Không có dữ liệu", "No data"),
}

_SEVERITY = [Level.FREE_FLOW, Level.HEAVY, Level.CONGESTED, Level.STATIONARY]

UNHEALTHY_EVENTS = frozenset(
    {EventType.CAMERA_OFFLINE, EventType.CAMERA_BLOCKED, EventType.CAMERA_FROZEN, EventType.CAMERA_MOVED}
)


def classify(ratio: float, config: CongestionConfig) -> Level:
    """The level of a speed that is ``ratio`` times the free-flow speed (no hysteresis)."""
    if ratio < config.stationary_below:
        return Level.STATIONARY
    if ratio < config.congested_below:
        return Level.CONGESTED
    if ratio < config.heavy_below:
        return Level.HEAVY
    return Level.FREE_FLOW


class LevelHysteresis:
    """A level that changes only when the ratio is clearly past a threshold and stays there.

    To get worse the ratio must be below the threshold minus ``hysteresis``; to
    get better, above it plus ``hysteresis``; and the new level must be the
    candidate for ``hold_s`` before it is taken. ``None`` (no data) gives
    ``unknown`` at once; the first value after ``unknown`` is taken at once.
    """

    def __init__(self, config: CongestionConfig) -> None:
        self.config = config
        self.level = Level.UNKNOWN
        self._candidate: Level | None = None
        self._since = 0.0

    def update(self, ratio: float | None, now: float) -> Level:
        if ratio is None:
            self.level, self._candidate = Level.UNKNOWN, None
            return self.level
        if self.level is Level.UNKNOWN:
            self.level, self._candidate = classify(ratio, self.config), None
            return self.level
        h = self.config.hysteresis
        current = _SEVERITY.index(self.level)
        worse, better = classify(ratio + h, self.config), classify(ratio - h, self.config)
        if _SEVERITY.index(worse) > current:
            target = worse
        elif _SEVERITY.index(better) < current:
            target = better
        else:
            target = self.level
        if target is self.level:
            self._candidate = None
        elif target is not self._candidate:
            self._candidate, self._since = target, now
        if self._candidate is not None and now - self._since >= self.config.hold_s:
            self.level, self._candidate = self._candidate, None
        return self.level


@dataclass(frozen=True, slots=True, eq=False)
class TrafficState:
    """One rendering of the board: the JSON body served as is, its ETag, and a key of what changed."""

    generated_at: float
    document: dict[str, Any]
    body: bytes
    etag: str
    content_key: str

    def segments(self) -> list[dict[str, Any]]:
        return self.document["segments"]


class _Uptime:
    """Share of recent ticks a camera was healthy."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.samples: deque[tuple[float, bool]] = deque()

    def add(self, now: float, healthy: bool) -> None:
        self.samples.append((now, healthy))
        while self.samples and self.samples[0][0] < now - self.window_s:
            self.samples.popleft()

    def share(self) -> float:
        if not self.samples:
            return 0.0
        return sum(h for _, h in self.samples) / len(self.samples)


class TrafficBoard:
    """Lane and segment states of every camera; thread-safe."""

    def __init__(
        self,
        config: TrafficConfig,
        lanes: Mapping[str, Iterable[str]],
        tz: tzinfo,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``lanes``: camera id -> its lane names (every lane a segment names must be there)."""
        self.config = config
        self.tz = tz
        self.clock = clock
        self.lane_ids = [f"{cam}/{lane}" for cam, names in lanes.items() for lane in names]
        missing = sorted({ref for s in config.segments for ref in s.lanes} - set(self.lane_ids))
        if missing:
            raise ValueError(f"traffic segments name lanes no camera has: {', '.join(missing)}")
        self.cameras = sorted(lanes)
        self.feed: StateFeed[TrafficState] = StateFeed(config.max_stream_clients)
        self._lock = threading.Lock()
        self._tick_lock = threading.Lock()
        self._live: dict[str, LaneLive] = {}
        self._minutes: dict[str, deque[LaneMinute]] = {
            lid: deque(maxlen=config.history_minutes) for lid in self.lane_ids
        }
        self._last_frame: dict[str, float] = {}  # camera -> clock() of its last report
        self._conditions: dict[str, set[EventType]] = {cam: set() for cam in self.cameras}
        self._uptime = {cam: _Uptime(config.uptime_window_s) for cam in self.cameras}
        self._lane_levels = {lid: LevelHysteresis(config.congestion) for lid in self.lane_ids}
        self._segment_levels = {s.id: LevelHysteresis(config.congestion) for s in config.segments}
        self._last_good: dict[str, float] = {}  # lane or segment id -> measured_at of its last known level
        self._health_sub: Subscription | None = None
        self._latest: TrafficState | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- inputs (camera threads, the bus) ----------------------------------------------

    def report(self, *, camera: str, output: TrafficOutput) -> None:
        """A camera's lane states after one analysed frame (cheap: a few dict updates).

        An output without lane states (a camera closing its lanes when it goes offline) hands over
        its last minutes but is not a frame: it does not make the camera look alive.
        """
        now = self.clock()
        with self._lock:
            if output.live:
                self._last_frame[camera] = now
            for live in output.live:
                self._live[f"{camera}/{live.lane}"] = live
            for minute in output.minutes:
                history = self._minutes.get(f"{camera}/{minute.lane}")
                if history is not None:
                    history.append(minute)

    def camera_condition(self, camera: str, condition: EventType, active: bool) -> None:
        with self._lock:
            conditions = self._conditions.setdefault(camera, set())
            if active:
                conditions.add(condition)
            else:
                conditions.discard(condition)

    def watch(self, bus: EventBus) -> None:
        """Follow camera health events on the bus (drained at each tick)."""
        self._health_sub = bus.subscribe(
            name="traffic-board", maxsize=4096, accept=lambda t: t.event.type in UNHEALTHY_EVENTS
        )

    def _drain_health(self) -> None:
        sub = self._health_sub
        if sub is None:
            return
        try:
            while (message := sub.get_nowait()) is not None:
                self._apply_health(message.transition)
        except Exception:  # the bus closed: keep the last known conditions
            self._health_sub = None

    def _apply_health(self, transition: EventTransition) -> None:
        event = transition.event
        self.camera_condition(event.camera, event.type, transition.phase is not Phase.END)

    # -- computing ------------------------------------------------------------------------

    def healthy(self, camera: str, now: float | None = None) -> bool:
        now = self.clock() if now is None else now
        with self._lock:
            last = self._last_frame.get(camera)
            return (
                last is not None
                and now - last <= self.config.stale_after_s
                and not self._conditions.get(camera)
            )

    def tick(self) -> TrafficState:
        """Recompute every lane and segment; publish to the feed if anything shown changed."""
        with self._tick_lock:  # the board's thread, and a first request before the board started
            return self._tick()

    def _tick(self) -> TrafficState:
        self._drain_health()
        now = self.clock()
        health = {cam: self.healthy(cam, now) for cam in self.cameras}
        for cam, ok in health.items():
            self._uptime[cam].add(now, ok)
        with self._lock:
            live = dict(self._live)
            minutes = {lid: (h[-1] if h else None) for lid, h in self._minutes.items()}
            conditions = {cam: sorted(c) for cam, c in self._conditions.items()}

        lanes_doc: dict[str, dict[str, Any]] = {}
        ratios: dict[str, float | None] = {}
        for lid in self.lane_ids:
            cam, lane = lid.split("/", 1)
            state = live.get(lid)
            ratio: float | None = None
            if health[cam] and state is not None and state.free_flow_kmh:
                # An empty lane on a working camera flows freely.
                ratio = 1.0 if state.speed_kmh is None else state.speed_kmh / state.free_flow_kmh
            ratios[lid] = ratio
            level = self._lane_levels[lid].update(ratio, now)
            if level is not Level.UNKNOWN and state is not None:
                self._last_good[lid] = state.measured_at
            shown = health[cam] and state is not None
            lanes_doc[lid] = {
                "id": lid,
                "camera": cam,
                "lane": lane,
                **_level_fields(level),
                "speed_kmh": _r(state.speed_kmh) if shown and state else None,
                "free_flow_kmh": _r(state.free_flow_kmh) if state else None,
                "occupancy": round(state.occupancy, 3) if shown and state else None,
                **self._age_fields(lid, now),
                "healthy": health[cam],
                "status": "ok" if health[cam] else _status(conditions.get(cam, []), state is None),
                "healthy_share": round(self._uptime[cam].share(), 3),
                "last_minute": minutes[lid].to_json() if shown and minutes[lid] else None,
            }

        segments_doc = []
        for seg in self.config.segments:
            known = [ratios[lid] for lid in seg.lanes if ratios[lid] is not None]
            ratio = sum(known) / len(known) if known else None  # type: ignore[arg-type]
            level = self._segment_levels[seg.id].update(ratio, now)
            good = [live[lid].measured_at for lid in seg.lanes if ratios[lid] is not None and lid in live]
            if level is not Level.UNKNOWN and good:
                self._last_good[seg.id] = min(good)
            speeds = [
                lanes_doc[lid]["speed_kmh"] for lid in seg.lanes
                if ratios[lid] is not None and lanes_doc[lid]["speed_kmh"] is not None
            ]  # fmt: skip
            cams = sorted({lid.split("/", 1)[0] for lid in seg.lanes})
            segments_doc.append(
                {
                    "id": seg.id,
                    "name": seg.name,
                    "name_en": seg.name_en,
                    **_level_fields(level),
                    "speed_kmh": _r(sum(speeds) / len(speeds))
                    if speeds and level is not Level.UNKNOWN
                    else None,
                    **self._age_fields(seg.id, now),
                    "stale": level is Level.UNKNOWN,
                    "healthy_share": round(sum(self._uptime[c].share() for c in cams) / len(cams), 3),
                    "lanes": list(seg.lanes),
                }
            )
        return self._render(now, segments_doc, list(lanes_doc.values()))

    def _age_fields(self, key: str, now: float) -> dict[str, Any]:
        measured = self._last_good.get(key)
        if measured is None:
            return {"measured_at": None, "age_s": None}
        return {
            "measured_at": datetime.fromtimestamp(measured, self.tz).isoformat(timespec="seconds"),
            "age_s": max(0, round(now - measured)),
        }

    def _render(
        self, now: float, segments: list[dict[str, Any]], lanes: list[dict[str, Any]]
    ) -> TrafficState:
        document = {
            "generated_at": datetime.fromtimestamp(now, self.tz).isoformat(timespec="seconds"),
            "stale_after_s": self.config.stale_after_s,
            "segments": segments,
            "lanes": lanes,
        }
        body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
        etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
        # What a viewer sees (levels, speeds, staleness, the last minute), without the ticking ages.
        shown = [
            {k: v for k, v in item.items() if k not in ("age_s", "measured_at", "healthy_share")}
            for item in segments + lanes
        ]
        key = hashlib.blake2b(json.dumps(shown, sort_keys=True).encode(), digest_size=12).hexdigest()
        state = TrafficState(now, document, body, etag, key)
        previous = self._latest
        self._latest = state
        if previous is None or previous.content_key != key:
            self.feed.publish(state)
        return state

    @property
    def latest(self) -> TrafficState:
        state = self._latest
        return state if state is not None else self.tick()

    # -- running -----------------------------------------------------------------------------

    def start(self) -> TrafficBoard:
        self.tick()
        self._thread = threading.Thread(target=self._run, name="traffic-board", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.config.tick_s):
            try:
                self.tick()
            except Exception:
                log.exception("traffic board tick failed; continuing")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        if self._health_sub is not None:
            self._health_sub.close()
        self.feed.close()


def _level_fields(level: Level) -> dict[str, str]:
    vi, en = LEVEL_LABELS[level]
    return {"level": level.value, "level_vi": vi, "level_en": en}


def _status(conditions: list[EventType], never_reported: bool) -> str:
    if conditions:
        return str(conditions[0]).removeprefix("camera_")
    return "no_frames" if never_reported else "stale"


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
