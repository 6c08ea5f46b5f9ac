"""Ten million stored events and the review feed: bulk load, then the real API under concurrent clients.

**Load.** The events are made inside PostgreSQL (``INSERT ... SELECT`` over ``generate_series``,
two connections in parallel), into the real, logged tables of the migrations, with the tables'
indexes dropped first and built again afterwards (and ``ANALYZE``): the fastest way PostgreSQL
allows for a durable table. Distribution: ``days`` of history ending now, in time order (as a
live city appends them); event ``i`` goes to a camera of the demo clip kind picked by the kinds'
measured events per hour (``benchmarks/city_rates.json``; a clip with no event in its half-minute
gets one an hour), uniformly among that kind's cameras; types as the clip's rules; events of the
last ``open_minutes`` still open; a few camera-health events everywhere.

**Queries.** The app (``api.app.create_app`` on :class:`PostgresEventStore`, accounts and scopes
as configured) runs in its own process under uvicorn; ``clients`` threads, each logged in as a khu
phố operator (its khu phố's cameras), a ward supervisor or an admin, page ``GET /events`` as the
console does: newest first, then ``next_cursor`` pages, a type filter, the last day, one camera.
Every request's latency is kept; p50/p99 and requests/s per kind of request. The store's SQL for
each kind is run under ``EXPLAIN (ANALYZE)`` to show which indexes answer it.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

from api.auth import Role, ScopeIndex
from api.auth.config import KhuPhoConfig, WardConfig
from api.auth.principal import Principal
from api.auth.security import Security
from benchmarks.city_sim import city_cameras, percentile
from events.storage.postgres import PostgresEventStore
from events.storage.store import EventFilters

PASSWORD = "city-bench-password-1"
KP_PER_WARD = 12
# Event types of each demo clip kind (its rules'), and the camera-health events every camera has.
KIND_TYPES = {
    "intersection": ["line_crossing"],
    "residential_lane": ["zone_intrusion", "loitering"],
    "plaza": ["crowding", "loitering"],
    "street": ["zone_intrusion"],
}
HEALTH_SHARE = 0.005  # camera_offline, camera_frozen...: rare next to the rules' events
TABLES = ("events", "event_classes")


def city_scope(cameras: int) -> ScopeIndex:
    specs = city_cameras(cameras)
    kps = sorted({c.khu_pho for c in specs if c.khu_pho})
    ward_of = {kp: f"w{i // KP_PER_WARD:03d}" for i, kp in enumerate(kps)}
    return ScopeIndex(
        wards={w: WardConfig(name=f"Phường {w}") for w in sorted(set(ward_of.values()))},
        khu_pho={kp: KhuPhoConfig(name=f"Khu phố {kp}", ward=ward_of[kp]) for kp in kps},
        camera_khu_pho={c.id: c.khu_pho for c in specs},
    )


# -- the load -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadPlan:
    events: int
    cameras: int
    days: float
    open_minutes: float
    weights: dict[str, float]  # kind -> events per camera-hour (measured; 1 for a silent clip)


def kind_weights(rates: dict[str, Any]) -> dict[str, float]:
    return {c["camera"]: max(1.0, float(c["events_per_hour"])) for c in rates["clips"]}


def _index_ddl(conn: psycopg.Connection[Any]) -> tuple[list[str], list[str]]:
    """(drop statements, create statements) for every index and primary key of the loaded tables."""
    drops, creates = [], []
    rows = conn.execute(
        "SELECT c.relname, i.relname, pg_get_indexdef(i.oid), con.conname, pg_get_constraintdef(con.oid) "
        "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class c ON c.oid = x.indrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN pg_constraint con ON con.conindid = i.oid AND con.contype = 'p' "
        "WHERE n.nspname = current_schema() AND c.relname = ANY(%s) ORDER BY c.relname, i.relname",
        (list(TABLES),),
    ).fetchall()
    for table, index, indexdef, constraint, constraintdef in rows:
        if constraint is not None:
            drops.append(f"ALTER TABLE {table} DROP CONSTRAINT {constraint}")
            creates.append(f"ALTER TABLE {table} ADD CONSTRAINT {constraint} {constraintdef}")
        else:
            drops.append(f"DROP INDEX {index}")
            creates.append(indexdef)
    return drops, creates


def _insert_sql(plan: LoadPlan, kinds: list[str]) -> str:
    """Rows ``%(lo)s <= g < %(hi)s``: event ``g`` at ``now - days + g x step``, its camera by kind."""
    span_us = int(plan.days * 86400e6)
    # Cameras of kind k are cam i with i mod len(kinds) == k (as in city_writes / city_rates).
    total = sum(plan.weights[k] for k in kinds)
    bounds, acc = [], 0.0
    for k in kinds[:-1]:
        acc += plan.weights[k] / total
        bounds.append(acc)
    kind_case = "CASE " + " ".join(f"WHEN r < {b!r} THEN {i}" for i, b in enumerate(bounds))
    kind_case += f" ELSE {len(kinds) - 1} END"
    per_kind = plan.cameras // len(kinds)
    types_case = "CASE k " + " ".join(
        f"WHEN {i} THEN (ARRAY{KIND_TYPES[k]!r})[1 + mod(g, {len(KIND_TYPES[k])})]"
        for i, k in enumerate(kinds)
    )
    types_case += " END"
    health = "(ARRAY['camera_offline','camera_frozen','camera_blocked','camera_moved'])[1 + mod(g, 4)]"
    open_us = int(plan.open_minutes * 60e6)
    return f"""
INSERT INTO events (id, camera, rule, type, classes, track_ids, start_pts, end_pts, start_us, end_us,
                    active, score, snapshot, data, phase_rank)
SELECT id, camera, type || '_rule', type, classes, ARRAY[g], 0.0,
       CASE WHEN active THEN NULL ELSE 5.0 + mod(g, 115) END, start_us,
       CASE WHEN active THEN NULL ELSE start_us + (5 + mod(g, 115)) * 1000000 END,
       active, 0.5 + mod(g, 50) / 100.0, NULL, '{{"sim": true}}'::jsonb,
       CASE WHEN active THEN 0 ELSE 2 END
FROM (
    SELECT g, md5(g::text || %(salt)s) AS id,
           'cam' || lpad((k + {len(kinds)} * floor(random() * {per_kind})::int)::text, 5, '0') AS camera,
           t, t AS start_us, t > %(now)s - {open_us} AS active,
           CASE WHEN random() < {HEALTH_SHARE} THEN {health} ELSE {types_case} END AS type,
           CASE WHEN k = {kinds.index("intersection") if "intersection" in kinds else -1}
                THEN ARRAY['car'] ELSE ARRAY['person'] END AS classes
    FROM (
        SELECT g, {kind_case} AS k,
               %(now)s - {span_us} + g * {span_us // plan.events} + mod(g, 997) AS t
        FROM (SELECT g, random() AS r FROM generate_series(%(lo)s::bigint, %(hi)s::bigint - 1) AS g) s0
    ) s1
) s2
"""


def bulk_load(connect: Any, plan: LoadPlan, kinds: list[str], *, jobs: int = 2) -> dict[str, Any]:
    """Empty the event tables and load ``plan.events`` (see the module); returns the timings."""
    out: dict[str, Any] = {"events": plan.events, "cameras": plan.cameras, "days": plan.days}
    with connect() as conn:
        drops, creates = _index_ddl(conn)
        with conn.transaction():
            conn.execute("TRUNCATE events, event_classes, snapshots, clips, locks")
            for stmt in drops:
                conn.execute(stmt)
    sql = _insert_sql(plan, kinds)
    now_us = int(time.time() * 1e6)
    salt = os.urandom(4).hex()
    chunks = [(plan.events * j // jobs, plan.events * (j + 1) // jobs) for j in range(jobs)]

    def insert(lo: int, hi: int) -> None:
        with connect() as conn:
            conn.execute(sql, {"lo": lo, "hi": hi, "now": now_us, "salt": salt})

    t0 = time.perf_counter()
    _parallel([lambda lo=lo, hi=hi: insert(lo, hi) for lo, hi in chunks])
    out["insert_events_s"] = round(time.perf_counter() - t0, 1)

    def classes(lo: int, hi: int) -> None:
        # The class index rows the store writes with each event, split by id range.
        with connect() as conn:
            conn.execute(
                "INSERT INTO event_classes (class_name, start_us, event_id) "
                "SELECT unnest(classes), start_us, id FROM events WHERE id >= %s AND id < %s",
                (lo, hi),
            )

    t0 = time.perf_counter()
    _parallel([lambda: classes("0", "8"), lambda: classes("8", "g")])
    out["insert_classes_s"] = round(time.perf_counter() - t0, 1)

    t0 = time.perf_counter()
    queue = list(creates)
    lock = threading.Lock()

    def build() -> None:
        with connect() as conn:
            conn.execute("SET maintenance_work_mem = '256MB'")
            while True:
                with lock:
                    if not queue:
                        return
                    stmt = queue.pop(0)
                conn.execute(stmt)

    _parallel([build] * jobs)
    out["indexes_s"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    with connect() as conn:
        for table in TABLES:
            conn.execute(f"ANALYZE {table}")
        out["analyze_s"] = round(time.perf_counter() - t0, 1)
        row = conn.execute(
            "SELECT pg_total_relation_size('events'), pg_total_relation_size('event_classes'), "
            "(SELECT COUNT(*) FROM events WHERE active), (SELECT COUNT(*) FROM events), "
            "(SELECT COUNT(DISTINCT camera) FROM events)"
        ).fetchone()
    assert row is not None
    keys = ("events_bytes", "event_classes_bytes", "open_events", "loaded", "cameras_with_events")
    out |= {k: int(v) for k, v in zip(keys, row, strict=True)}
    out["load_s"] = round(
        out["insert_events_s"] + out["insert_classes_s"] + out["indexes_s"] + out["analyze_s"], 1
    )
    return out


def bulk_review(connect: Any) -> dict[str, Any]:
    """File the loaded events for review as the review feeder would, in bulk: one item per camera,
    rule and hour (the feeder merges events less than 60 s apart, so a busy camera's items are
    longer than this and a quiet one's the same), open for the last day, resolved before; every
    event linked to its item. Returns the counts and the seconds it took."""
    t0 = time.perf_counter()
    day_ago = int((time.time() - 86400) * 1e6)
    with connect() as conn:
        conn.execute("SET maintenance_work_mem = '256MB'")
        conn.execute(
            "CREATE TEMP TABLE items AS SELECT camera, rule, start_us / 3600000000 AS hour,"
            " min(type) AS type, min(start_us) AS start_us, max(coalesce(end_us, start_us)) AS last_us,"
            " bool_or(active) AS active, count(*) AS events"
            " FROM events GROUP BY camera, rule, start_us / 3600000000"
        )
        conn.execute(
            "INSERT INTO review_items (id, camera, rule, type, severity, state, start_us, last_us, active,"
            " events, tracks, classes, created_us, acked_us, resolved_us, resolution, seq)"
            " SELECT md5(camera || '/' || rule || '/' || hour), camera, rule, type,"
            " CASE WHEN type IN ('zone_intrusion', 'loitering', 'crowding')"
            " THEN 'alert' ELSE 'detection' END,"
            " CASE WHEN start_us >= %s THEN 'new' ELSE 'resolved' END, start_us, last_us, active::int,"
            " events, '[]', '[]', start_us, CASE WHEN start_us < %s THEN last_us END,"
            " CASE WHEN start_us < %s THEN last_us END, CASE WHEN start_us < %s THEN 'true_alarm' END,"
            " row_number() OVER (ORDER BY start_us, camera, rule)"
            " FROM items",
            (day_ago, day_ago, day_ago, day_ago),
        )
        conn.execute(
            "INSERT INTO review_events (event_id, item_id, start_us, active)"
            " SELECT id, md5(camera || '/' || rule || '/' || (start_us / 3600000000)), start_us, active::int"
            " FROM events"
        )
        conn.execute("ANALYZE review_items")
        conn.execute("ANALYZE review_events")
        items = conn.execute("SELECT count(*) FROM review_items").fetchone()[0]
        linked = conn.execute("SELECT count(*) FROM review_events").fetchone()[0]
        open_items = conn.execute("SELECT count(*) FROM review_items WHERE state = 'new'").fetchone()[0]
    return {
        "items": items,
        "open_items": open_items,
        "events_linked": linked,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _parallel(jobs: list[Any]) -> None:
    errors: list[BaseException] = []

    def run(job: Any) -> None:
        try:
            job()
        except BaseException as exc:  # re-raised below, in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(j,)) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


# -- the API --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    role: Role
    scopes: tuple[str, ...]

    def cameras(self, scope: ScopeIndex) -> frozenset[str] | None:
        """The cameras this user may see (None: all), as the API's scope check decides."""
        principal = Principal("user", "-", "-", self.role, self.scopes)
        return scope.cameras_for(principal)


def make_users(
    security: Security, scope: ScopeIndex, *, operators: int, busy_camera: str, seed: int = 11
) -> dict[str, User]:
    """An admin, the supervisor of ``busy_camera``'s ward, and ``operators`` khu phố operators
    (``city-op000``: ``busy_camera``'s khu phố; the others' at random). Username -> user."""
    rng = random.Random(seed)
    kps = sorted(scope.khu_pho)
    busy_kp = scope.camera_khu_pho[busy_camera]
    assert busy_kp is not None
    users = {
        "city-admin": User(Role.ADMIN, ()),
        "city-supervisor": User(Role.SUPERVISOR, (scope.khu_pho[busy_kp].ward,)),
        "city-op000": User(Role.OPERATOR, (busy_kp,)),
    }
    users |= {f"city-op{i:03d}": User(Role.OPERATOR, (rng.choice(kps),)) for i in range(1, operators)}
    for name, user in users.items():
        security.auth.add_user(name, PASSWORD, user.role, list(user.scopes))
    return users


@contextmanager
def api_server(store_options: dict[str, Any], cameras: int, work: Path, pool_size: int) -> Iterator[str]:
    """The app in a child process (``python -m benchmarks.city_api``); yields its base URL."""
    ready = work / "api-ready"
    ready.unlink(missing_ok=True)
    spec = {
        "store": store_options,
        "cameras": cameras,
        "media": str(work / "media"),
        "ready": str(ready),
        "pool_size": pool_size,
    }
    spec_file = work / "api.json"
    spec_file.write_text(json.dumps(spec))
    spec_file.chmod(0o600)  # holds the database password
    log = (work / "api.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.city_api", str(spec_file)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the API did not start: {(work / 'api.log').read_text()[-2000:]}")
            time.sleep(0.1)
        yield ready.read_text().strip()
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


@contextmanager
def login(base: str, username: str) -> Iterator[httpx.Client]:
    """A client logged in as ``username`` (its session cookie and CSRF header)."""
    with httpx.Client(base_url=base, timeout=30.0) as client:
        r = client.post("/auth/login", json={"username": username, "password": PASSWORD})
        r.raise_for_status()
        client.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        yield client


def _scenario(cameras: list[str], rng: random.Random) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """The console's requests for one visit: (kind, path, query)."""
    yield "newest page", "/events", {"limit": 50}
    yield (
        "type filter",
        "/events",
        {"limit": 50, "type": rng.choice(["loitering", "zone_intrusion", "crowding"])},
    )
    yield "last 24 h", "/events", {"limit": 50, "since": _iso(time.time() - 86400)}
    if cameras:
        yield "one camera", "/events", {"limit": 50, "camera": rng.choice(cameras)}
    # The review console: items of the caller's cameras, newest first, and what is still open.
    yield "review newest page", "/review/items", {"limit": 50}
    yield "review open items", "/review/items", {"limit": 50, "state": "new"}


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def run_clients(
    base: str, users: dict[str, User], scope: ScopeIndex, *, clients: int, seconds: float, pages: int = 3
) -> dict[str, Any]:
    """``clients`` threads paging the feed for ``seconds``; latency per request kind and role."""
    names = sorted(users)
    ops = [u for u in names if users[u].role is Role.OPERATOR]
    # Mostly operators (the review console's users), one supervisor and one admin among them.
    chosen = ["city-supervisor", "city-admin", *ops][:clients] if clients > 2 else ops[:clients]
    latencies: dict[str, list[float]] = defaultdict(list)
    failures: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    requests = 0

    def one(username: str, seed: int) -> None:
        nonlocal requests
        rng = random.Random(seed)
        role = users[username].role.value
        allowed = users[username].cameras(scope)
        visible = sorted(allowed) if allowed is not None else sorted(scope.camera_khu_pho)[:50]
        with login(base, username) as client:
            while not stop.is_set():
                for kind, path, query in _scenario(visible, rng):
                    cursor = None
                    for page in range(pages if kind.endswith("newest page") else 1):
                        q = dict(query) | ({"cursor": cursor} if cursor else {})
                        t0 = time.perf_counter()
                        r = client.get(path, params=q)
                        took = time.perf_counter() - t0
                        label = f"{role}: {kind}" + (" (next pages)" if page else "")
                        with lock:
                            requests += 1
                            latencies[label].append(took)
                            if r.status_code != 200:
                                failures.append(f"{label}: {r.status_code} {r.text[:200]}")
                        if r.status_code != 200:
                            break
                        cursor = r.json()["next_cursor"]
                        if cursor is None or stop.is_set():
                            break

    threads = [threading.Thread(target=one, args=(u, i), daemon=True) for i, u in enumerate(chosen)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    stop.wait(seconds)
    stop.set()
    for t in threads:
        t.join(60)
    elapsed = time.perf_counter() - t0
    rows = {
        label: {
            "requests": len(v),
            "p50_ms": round(1e3 * statistics.median(v), 1),
            "p99_ms": round(1e3 * percentile(v, 0.99), 1),
        }
        for label, v in sorted(latencies.items())
    }
    every = [x for v in latencies.values() for x in v]
    return {
        "clients": len(chosen),
        "seconds": round(elapsed, 1),
        "requests": requests,
        "requests_per_s": round(requests / elapsed, 1),
        "p50_ms": round(1e3 * statistics.median(every), 1) if every else None,
        "p99_ms": round(1e3 * percentile(every, 0.99), 1) if every else None,
        "by_request": rows,
        "failures": failures[:5],
        "failure_count": len(failures),
    }


# -- checks ---------------------------------------------------------------------------------------------


def check_pages(
    base: str, username: str, user: User, scope: ScopeIndex, connect: Any, *, pages: int = 3
) -> dict[str, Any]:
    """The API's first ``pages`` pages for ``username`` against the same rows read with SQL."""
    got: list[str] = []
    with login(base, username) as client:
        cursor = None
        for _ in range(pages):
            r = client.get("/events", params={"limit": 50} | ({"cursor": cursor} if cursor else {}))
            r.raise_for_status()
            got += [e["id"] for e in r.json()["items"]]
            cursor = r.json()["next_cursor"]
            if cursor is None:
                break
    allowed = user.cameras(scope)
    where, params = ("WHERE camera = ANY(%s)", [sorted(allowed)]) if allowed is not None else ("", [])
    with connect() as conn:
        rows = conn.execute(
            f"SELECT id FROM events {where} ORDER BY start_us DESC, id DESC LIMIT %s",
            [*params, max(1, len(got))],
        ).fetchall()
    want = [r[0] for r in rows]
    return {"user": username, "role": user.role.value, "ids": len(got), "match": got == want and len(got) > 0}


def explain(store: PostgresEventStore, cameras: list[str]) -> dict[str, Any]:
    """The store's SQL for each kind of feed request, under EXPLAIN (ANALYZE): the plan's scans."""
    captured: list[tuple[str, list[Any]]] = []
    original = store._events

    def capture(sql: str, params: Any = ()) -> Any:
        captured.append((sql, list(params)))
        return original(sql, params)

    store._events = capture  # type: ignore[method-assign]
    try:
        day_ago = _dt(time.time() - 86400)
        cases = {
            "newest page (admin)": EventFilters(),
            "one camera": EventFilters(camera=cameras[0]),
            "one camera, a type": EventFilters(camera=cameras[0], type="loitering"),  # type: ignore[arg-type]
            # The supervisor's filter on a busy camera that rarely has the type: its worst case.
            "one camera, a rare type": EventFilters(camera=cameras[0], type="camera_frozen"),  # type: ignore[arg-type]
            "a type (admin)": EventFilters(type="zone_intrusion"),  # type: ignore[arg-type]
            "last 24 h (admin)": EventFilters(since=day_ago),
            "one camera, last 24 h": EventFilters(camera=cameras[0], since=day_ago),
            "a class (admin)": EventFilters(class_name="car"),
        }
        plans: dict[str, Any] = {}
        for label, filters in cases.items():
            captured.clear()
            _, cursor = store.list_events(filters, limit=50)
            if cursor is not None:
                store.list_events(filters, limit=50, cursor=cursor)  # the next page's query too
            sql, params = captured[-1]
            with store.transaction() as cur:
                cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
                row = cur.fetchone()
            assert row is not None
            plan = row[0][0]
            scans = sorted(set(_scans(plan["Plan"])))
            plans[label] = {
                "ms": round(plan["Execution Time"], 2),
                # Rows of events the scans read (returned or filtered out) for one page of 50.
                "events_rows_read": sum(_rows_read(plan["Plan"])),
                "scans": scans,
                "seq_scan_on_events": any(s.startswith("Seq Scan on events") for s in scans),
            }
        return plans
    finally:
        del store._events


def _scans(node: dict[str, Any]) -> Iterator[str]:
    if "Relation Name" in node:
        name = node["Node Type"] + " on " + node["Relation Name"]
        if "Index Name" in node:
            name += f" using {node['Index Name']}"
        yield name
    for child in node.get("Plans", []):
        yield from _scans(child)


def _rows_read(node: dict[str, Any]) -> Iterator[int]:
    if node.get("Relation Name") == "events" or node.get("Index Name", "").startswith("events_"):
        loops = node.get("Actual Loops", 1)
        yield int((node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)) * loops)
    for child in node.get("Plans", []):
        yield from _rows_read(child)


def _dt(t: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC)
