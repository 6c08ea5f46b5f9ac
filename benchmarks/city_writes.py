"""The event write rate PostgreSQL sustains: synthetic cameras writing as cluster-mode camera writers do.

Each simulated camera produces writer batches at the rates measured on the real footage
(``benchmarks/city_rates.json``: camera ``i`` behaves like demo clip ``i mod 4``): an event is a
``start``, its ``update``\\ s and an ``end``, spread over as many batches as the clip's events
took, with the clip's traffic counts. A batch is stored exactly as a camera actor's writer stores
it in cluster mode: ``FencedStore(store, camera, epoch).apply_batch(..., batch_id="cam@epoch-...")``,
one transaction that checks the camera's lease, records the batch id and upserts its rows.

``writers`` threads share the cameras (``cluster/actors.py`` gives every camera actor its own
connections; thousands of cameras need a pooler in front of PostgreSQL, so a fixed number of
connections is what the server sees either way). Two runs:

- **saturation**: each writer stores its cameras' next batches as fast as it can; transitions/s
  is what this PostgreSQL (and this client) sustains;
- **paced**: batches fall due on the cameras' schedule for ``cameras`` cameras; a writer behind
  stores late batches, and the backlog age (now minus when a batch fell due, when it is stored)
  says whether the writers keep up.

CPU seconds of the PostgreSQL server's processes and of this process are counted per 1,000
transitions: that is what sizes a database for a city, whatever this shared machine's load.
"""

from __future__ import annotations

import heapq
import math
import random
import secrets
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psutil

from api.demo import DEMO_CAMERAS
from cluster.leases import FencedStore, batch_prefix
from events.model import Event, EventTransition, EventType, Phase, TrafficCount
from events.storage.postgres import PostgresEventStore

DIRECTIONS = ("in", "out")


@dataclass(frozen=True, slots=True)
class Kind:
    """How one demo clip's camera writes: per camera-hour, and which rules fire."""

    name: str
    events_per_hour: float
    transitions_per_hour: float
    traffic_per_hour: float
    batches_per_hour: float
    rules: tuple[tuple[str, str], ...]  # (rule name, event type)


def kinds_from_rates(rates: dict[str, Any]) -> list[Kind]:
    kinds = []
    for clip in rates["clips"]:
        rules = DEMO_CAMERAS[clip["camera"]]["rules"]
        kinds.append(
            Kind(
                clip["camera"],
                clip["events_per_hour"],
                clip["transitions_per_hour"],
                clip["traffic_counts_per_hour"],
                clip["batches_per_hour"],
                tuple((r["name"], r["type"]) for r in rules),
            )
        )
    return kinds


@dataclass
class SimCamera:
    """One camera's event stream: deterministic for its index (no randomness to seed)."""

    id: str
    epoch: int
    kind: Kind
    seq: int = 0
    events: int = 0
    open_event: Event | None = None
    left_transitions: int = 0
    left_batches: int = 0
    emitted: int = 0  # transitions
    counted: int = 0  # traffic increments (their count sum)

    @property
    def period_s(self) -> float:
        """Seconds between its batches; a clip without events writes nothing here (its batches are
        its events')."""
        kind = self.kind
        return (
            3600.0 / kind.batches_per_hour
            if kind.batches_per_hour > 0 and kind.events_per_hour > 0
            else math.inf
        )

    def next_batch(self, now: datetime) -> tuple[list[EventTransition], list[TrafficCount]]:
        kind = self.kind
        transitions: list[EventTransition] = []
        if self.open_event is None:
            # The clip's transitions and batches per event, spread evenly over its events.
            n = self.events
            per_event_t = kind.transitions_per_hour / kind.events_per_hour
            per_event_b = kind.batches_per_hour / kind.events_per_hour
            self.left_transitions = max(2, round((n + 1) * per_event_t) - round(n * per_event_t))
            self.left_batches = max(1, round((n + 1) * per_event_b) - round(n * per_event_b))
            rule, type_ = kind.rules[n % len(kind.rules)]
            classes = ["car"] if type_ == "line_crossing" else ["person"]
            self.open_event = Event(
                camera=self.id,
                rule=rule,
                type=EventType(type_),
                classes=classes,
                track_ids=[n + 1],
                start_pts=float(n),
                start_time=now,
                data={"sim": True},
            )
            self.events += 1
            transitions.append(EventTransition(phase=Phase.START, event=self.open_event))
            self.left_transitions -= 1
        take = math.ceil(self.left_transitions / self.left_batches) - len(transitions)
        for _ in range(max(0, take)):
            ev = self.open_event
            assert ev is not None
            self.left_transitions -= 1
            if self.left_transitions == 0:
                ended = ev.model_copy(
                    update={"active": False, "end_time": now, "end_pts": ev.start_pts + 1.0}
                )
                transitions.append(EventTransition(phase=Phase.END, event=ended))
                self.open_event = None
                break
            ev = ev.model_copy(update={"track_ids": [*ev.track_ids, len(ev.track_ids) + 1]})
            self.open_event = ev
            transitions.append(EventTransition(phase=Phase.UPDATE, event=ev))
        self.left_batches = max(1, self.left_batches - 1)
        traffic: list[TrafficCount] = []
        # The clip's traffic counts per batch (a crossing is counted in its event's batch).
        due = round((self.seq + 1) * kind.traffic_per_hour / kind.batches_per_hour) - round(
            self.seq * kind.traffic_per_hour / kind.batches_per_hour
        )
        if due > 0:
            minute = now.replace(second=0, microsecond=0)
            traffic.append(
                TrafficCount(
                    camera=self.id,
                    line=kind.rules[0][0],
                    class_name="car",
                    direction=DIRECTIONS[self.seq % 2],
                    minute=minute,
                    count=due,
                )
            )
        self.seq += 1
        self.emitted += len(transitions)
        self.counted += sum(t.count for t in traffic)
        return transitions, traffic


@dataclass
class WriterStats:
    batches: int = 0
    transitions: int = 0
    ages: list[float] = field(default_factory=list)
    late: int = 0
    errors: list[str] = field(default_factory=list)


def take_leases(store: PostgresEventStore, cameras: list[str]) -> dict[str, int]:
    """A lease per camera (what the controller's ``Leases.take`` does), in one statement."""
    now = int(time.time() * 1e6)
    with store.transaction() as cur:
        cur.execute(
            "INSERT INTO cluster_leases AS l SELECT c, 1, 'sim', %s, %s FROM unnest(%s::text[]) AS c "
            "ON CONFLICT (camera) DO UPDATE SET epoch = l.epoch + 1 RETURNING camera, epoch",
            (now, now, cameras),
        )
        return {r[0]: int(r[1]) for r in cur.fetchall()}


def make_cameras(
    store: PostgresEventStore, n: int, kinds: list[Kind], prefix: str
) -> tuple[list[SimCamera], float]:
    """The cameras and their leases; also the seconds their leases took in one statement (against
    the controller's one ``Leases.take`` round trip per camera)."""
    ids = [f"{prefix}{i:05d}" for i in range(n)]
    t0 = time.perf_counter()
    epochs = take_leases(store, ids)
    took = time.perf_counter() - t0
    return [SimCamera(cam, epochs[cam], kinds[i % len(kinds)]) for i, cam in enumerate(ids)], took


def _writer(
    store: PostgresEventStore,
    cameras: list[SimCamera],
    stats: WriterStats,
    stop: threading.Event,
    *,
    paced: bool,
    t0: float,
    deadline: float,
) -> None:
    run = secrets.token_hex(3)
    fenced = {c.id: FencedStore(store, c.id, c.epoch) for c in cameras}
    # (due time, camera index): the cameras' schedules, staggered so they do not all fall due at once.
    heap = [
        (t0 + c.period_s * ((i * 0.618) % 1.0), i) for i, c in enumerate(cameras) if c.period_s < math.inf
    ]
    heapq.heapify(heap)
    base = datetime.now(UTC)
    while heap and not stop.is_set():
        due, i = heap[0]
        now = time.monotonic()
        if now >= deadline:
            break
        if paced and due > now:
            stop.wait(min(due - now, deadline - now))
            continue
        heapq.heapreplace(heap, (due + cameras[i].period_s, i))
        cam = cameras[i]
        transitions, traffic = cam.next_batch(base + timedelta(seconds=due - t0))
        batch_id = f"{batch_prefix(cam.id, cam.epoch)}-{run}:{cam.seq}"
        try:
            fenced[cam.id].apply_batch(transitions, traffic, batch_id=batch_id)
        except Exception as exc:  # counted and shown: a writer error is a finding, not a crash
            stats.errors.append(f"{type(exc).__name__}: {exc}"[:300])
            continue
        stats.batches += 1
        stats.transitions += len(transitions)
        if paced:
            stats.ages.append(time.monotonic() - due)
    # Batches that fell due before the deadline and were not stored: the writers' backlog at the end.
    stats.late = sum(
        math.floor((deadline - due) / cameras[i].period_s) + 1 for due, i in heap if due < deadline
    )


def postgres_cpu_s(data_dir_marker: int) -> float:
    """CPU seconds of the PostgreSQL server: the postmaster (pid ``data_dir_marker``) and its children."""
    try:
        master = psutil.Process(data_dir_marker)
        procs = [master, *master.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            continue
    return total


def run_writes(
    store: PostgresEventStore,
    cameras: list[SimCamera],
    *,
    writers: int,
    seconds: float,
    paced: bool,
    server_cpu: Callable[[], float],
) -> dict[str, Any]:
    """One run (see the module): ``writers`` threads for ``seconds``."""
    # Cameras dealt to writers in a fixed shuffled order: by index, a writer count that is a multiple
    # of the clip kinds would give each writer cameras of one kind only (idle or overloaded).
    dealt = list(cameras)
    random.Random(5).shuffle(dealt)
    groups = [dealt[w::writers] for w in range(writers)]
    stats = [WriterStats() for _ in groups]
    stop = threading.Event()
    cpu0, srv0 = time.process_time(), server_cpu()
    t0 = time.monotonic()
    threads = [
        threading.Thread(
            target=_writer,
            args=(store, g, s, stop),
            kwargs={"paced": paced, "t0": t0, "deadline": t0 + seconds},
            name=f"city-writer-{i}",
            daemon=True,
        )
        for i, (g, s) in enumerate(zip(groups, stats, strict=True))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    stop.set()
    elapsed = time.monotonic() - t0
    client_cpu, srv_cpu = time.process_time() - cpu0, server_cpu() - srv0
    batches = sum(s.batches for s in stats)
    transitions = sum(s.transitions for s in stats)
    ages = [a for s in stats for a in s.ages]
    need_batches = sum(c.kind.batches_per_hour for c in cameras) / 3600.0
    need_transitions = sum(c.kind.transitions_per_hour for c in cameras) / 3600.0
    out: dict[str, Any] = {
        "mode": "paced" if paced else "saturation",
        "cameras": len(cameras),
        "writers": writers,
        "seconds": round(elapsed, 2),
        "batches": batches,
        "transitions": transitions,
        "batches_per_s": round(batches / elapsed, 1),
        "transitions_per_s": round(transitions / elapsed, 1),
        "needed_batches_per_s": round(need_batches, 1),
        "needed_transitions_per_s": round(need_transitions, 1),
        "ratio": round((transitions / elapsed) / need_transitions, 3) if need_transitions else None,
        "postgres_cpu_s_per_1000_transitions": round(1000 * srv_cpu / max(1, transitions), 4),
        "client_cpu_s_per_1000_transitions": round(1000 * client_cpu / max(1, transitions), 4),
        "postgres_cpu_share": round(srv_cpu / elapsed, 3),
        "client_cpu_share": round(client_cpu / elapsed, 3),
        "errors": [e for s in stats for e in s.errors][:5],
        "error_count": sum(len(s.errors) for s in stats),
    }
    if paced:
        out |= {
            "backlog_age_p50_s": round(statistics.median(ages), 3) if ages else None,
            "backlog_age_p99_s": round(sorted(ages)[int(0.99 * (len(ages) - 1))], 3) if ages else None,
            # The most behind writer at the end: the age of the last batch it stored.
            "backlog_age_at_end_s": round(max(s.ages[-1] for s in stats if s.ages), 3) if ages else None,
            "batches_due_unwritten_at_end": sum(s.late for s in stats),
        }
    return out


def check_stored(store: PostgresEventStore, cameras: list[SimCamera]) -> dict[str, Any]:
    """What the cameras emitted against what PostgreSQL holds: events, open ones, traffic sums."""
    ids = [c.id for c in cameras]
    with store.transaction() as cur:
        cur.execute(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE active) FROM events WHERE camera = ANY(%s)", (ids,)
        )
        row = cur.fetchone()
        assert row is not None
        events, active = int(row[0]), int(row[1])
        cur.execute("SELECT COALESCE(SUM(count), 0) FROM traffic WHERE camera = ANY(%s)", (ids,))
        row = cur.fetchone()
        assert row is not None
        traffic = int(row[0])
    return {
        "events_emitted": sum(c.events for c in cameras),
        "events_stored": events,
        "open_emitted": sum(c.open_event is not None for c in cameras),
        "open_stored": active,
        "traffic_emitted": sum(c.counted for c in cameras),
        "traffic_stored": traffic,
    }
