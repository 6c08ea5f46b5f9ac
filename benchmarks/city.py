"""City-scale simulation: the cluster controller and storage under thousands of simulated cameras.

``python -m benchmarks.city [--cameras 5000] [--events 10000000] [--quick] [--out out/city.json]``

Loopback only, bounded in time (``--quick``: 500 cameras, 200,000 events, under a minute; the
full run about 10-15 minutes on 2 cores, most of it loading the ten million events). One private
PostgreSQL 15 server is started for the run with durable settings (``fsync``, full-page writes,
synchronous commit; see ``DURABLE``) and removed afterwards. The parts, in this order (``--parts``):

1. **Writes** (``benchmarks/city_writes.py``): every camera writing at the rates measured on the
   real footage (``benchmarks/city_rates.json``), through fenced batches as cluster-mode camera
   writers store them, by ``--writers`` connections: saturation and paced runs. They leave the
   open events a live city has in the table for the next two parts.
2. **Recovery**: a controller (re)start on a sample of the cameras: a fence and "end what it left
   open" per camera, timed per camera.
3. **Controller** (``benchmarks/city_sim.py``): the real :class:`cluster.controller.Controller`
   and its leases in PostgreSQL, driving simulated nodes (``--capacity`` cameras each, the live
   capacity ``khupho bench`` measured on a 2-core node): cold start, steady rounds, 10 % of the
   nodes lost (silent), 10 % more nodes joining; rounds, time, khu phố spread.
4. **Feed** (``benchmarks/city_feed.py``): ``--events`` events bulk-loaded, then the API under
   ``--clients`` concurrent logged-in clients paging ``GET /events``; plans under EXPLAIN.

The live feed's fan-out is measured by ``benchmarks/feed_fanout.py`` (another change); the table
leaves its row for that benchmark's numbers.

The table's rows say what was measured and what the sizing extrapolates (README "Sizing a city").
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from api.auth.db_postgres import PostgresSecurityDb
from api.auth.security import Security
from benchmarks.city_feed import (
    LoadPlan,
    api_server,
    bulk_load,
    bulk_review,
    check_pages,
    city_scope,
    explain,
    kind_weights,
    make_users,
    run_clients,
)
from benchmarks.city_rates import RATES_FILE
from benchmarks.city_sim import SimRuntime, run_controller
from benchmarks.city_writes import check_stored, kinds_from_rates, make_cameras, postgres_cpu_s, run_writes
from cluster.config import ClusterConfig
from cluster.controller import Controller
from cluster.placement import CameraSpec
from events.storage.postgres import PostgresEventStore
from tests.conftest_pg import remove_postgres, start_postgres

# A production-like server for one 2-core host: durable commits, room for the load's WAL, memory
# for index builds. Not the tests' throwaway settings (fsync off).
DURABLE = {
    "fsync": "on",
    "full_page_writes": "on",
    "synchronous_commit": "on",
    "shared_buffers": "512MB",
    "effective_cache_size": "4GB",
    "work_mem": "16MB",
    "maintenance_work_mem": "256MB",
    "max_parallel_maintenance_workers": "2",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "15min",
    "wal_buffers": "16MB",
    "max_connections": "200",
}


# Writes first: the recovery and the controller then find the open events a live city has in its table.
PARTS = ("writes", "recover", "controller", "feed")


def settings(args: argparse.Namespace) -> dict[str, Any]:
    quick = args.quick
    return {
        "cameras": args.cameras or (500 if quick else 5000),
        "events": args.events or (200_000 if quick else 10_000_000),
        "capacity": args.capacity,
        "writers": args.writers,
        "write_seconds": 6.0 if quick else args.write_seconds,
        "api_seconds": 6.0 if quick else args.api_seconds,
        "clients": args.clients,
        "steady_rounds": 10 if quick else 60,
        "max_moves_per_round": args.max_moves,
        "parts": args.parts,
    }


def run(opts: dict[str, Any], work: Path, result: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every part in turn; ``result`` (filled as the parts finish) keeps what a failed run got."""
    rates = json.loads(RATES_FILE.read_text())
    result = {} if result is None else result
    result |= {
        "settings": opts,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg(),
        "rates": {"file": RATES_FILE.name, "command": rates["command"], "mix": rates["mix_per_camera_hour"]},
    }
    # Thousands of "camera ... lost; fencing it off" lines: the log's cost is not what is measured.
    logging.getLogger("cluster.controller").setLevel(logging.CRITICAL)
    logging.getLogger("pipeline.recovery").setLevel(logging.CRITICAL)
    server = start_postgres(DURABLE)
    try:
        options = server.store_options()
        store = PostgresEventStore(**options, pool_size=opts["writers"] + 4)  # type: ignore[arg-type]
        try:
            for part in opts.get("parts", PARTS):  # in the order given
                t0 = time.perf_counter()
                if part == "controller":
                    result["controller"] = run_controller(
                        store,
                        cameras=opts["cameras"],
                        capacity=opts["capacity"],
                        headroom=0.15,
                        lose_fraction=0.1,
                        join_fraction=0.1,
                        steady_rounds=opts["steady_rounds"],
                        max_moves_per_round=opts["max_moves_per_round"],
                    )
                elif part == "writes":
                    result["writes"] = _writes(store, server, opts, rates)
                elif part == "recover":
                    result["recover"] = _recover_cost(store, opts)
                elif part == "feed":
                    result["feed"] = _feed(store, server, opts, rates, work)
                result[part]["seconds"] = round(time.perf_counter() - t0, 1)
        finally:
            store.close()
    finally:
        remove_postgres(server)
    result["load_after"] = os.getloadavg()
    return result


def _writes(
    store: PostgresEventStore, server: Any, opts: dict[str, Any], rates: dict[str, Any]
) -> dict[str, Any]:
    kinds = kinds_from_rates(rates)
    assert server.proc is not None
    cpu = lambda: postgres_cpu_s(server.proc.pid)  # noqa: E731
    out: dict[str, Any] = {}
    cams, out["leases_in_one_statement_s"] = make_cameras(store, opts["cameras"], kinds, "wcam")
    out["saturation"] = run_writes(
        store, cams, writers=opts["writers"], seconds=opts["write_seconds"], paced=False, server_cpu=cpu
    )
    out["saturation"]["check"] = check_stored(store, cams)
    # The paced run: fresh cameras on their schedules (what the city needs, no more).
    paced, _ = make_cameras(store, opts["cameras"], kinds, "pcam")
    out["paced"] = run_writes(
        store, paced, writers=opts["writers"], seconds=opts["write_seconds"], paced=True, server_cpu=cpu
    )
    out["paced"]["check"] = check_stored(store, paced)
    # Flat out again with the live feed on (each batch NOTIFYs: what API processes' listeners need;
    # PostgreSQL commits notifying transactions one at a time).
    notifying = PostgresEventStore(**server.store_options(), pool_size=opts["writers"] + 4, notify_feed=True)
    try:
        ncams, _ = make_cameras(notifying, opts["cameras"], kinds, "ncam")
        out["saturation_notify"] = run_writes(
            notifying,
            ncams,
            writers=opts["writers"],
            seconds=opts["write_seconds"],
            paced=False,
            server_cpu=cpu,
        )
        out["saturation_notify"]["check"] = check_stored(notifying, ncams)
    finally:
        notifying.close()
    return out


def _recover_cost(store: PostgresEventStore, opts: dict[str, Any]) -> dict[str, Any]:
    """A controller (re)start fences every camera and ends what it left open, one camera at a time
    (``Controller._recover``: a lease and an open-events query each); timed on a sample of the
    cameras with the open events the write runs left in the table, then per camera."""
    with store.transaction() as cur:
        cur.execute("SELECT COUNT(*) FROM events WHERE active")
        row = cur.fetchone()
    open_events = int(row[0]) if row else 0
    # The saturation run's cameras: they hold open events, as cameras found by a restart do.
    sample = [CameraSpec(f"wcam{i:05d}") for i in range(min(200, opts["cameras"]))]
    config = ClusterConfig(address="127.0.0.1:6379")
    t0 = time.perf_counter()
    Controller(SimRuntime(), store, sample, config, timezone="Asia/Ho_Chi_Minh")
    took = time.perf_counter() - t0
    per = took / len(sample)
    return {
        "open_events_in_table": open_events,
        "sample_cameras": len(sample),
        "seconds": round(took, 3),
        "per_camera_ms": round(1e3 * per, 2),
        "extrapolated_for_all_cameras_s": round(per * opts["cameras"], 1),
    }


def _feed(
    store: PostgresEventStore, server: Any, opts: dict[str, Any], rates: dict[str, Any], work: Path
) -> dict[str, Any]:
    plan = LoadPlan(
        events=opts["events"],
        cameras=opts["cameras"],
        days=30.0,
        open_minutes=10.0,
        weights=kind_weights(rates),
    )
    kinds = [c["camera"] for c in rates["clips"]]
    out: dict[str, Any] = {"load": bulk_load(server.connect, plan, kinds)}
    scope = city_scope(opts["cameras"])
    # A busy camera (plaza kind) for the plans: the one with the most events.
    with server.connect() as conn:
        row = conn.execute(
            "SELECT camera FROM events GROUP BY camera ORDER BY COUNT(*) DESC LIMIT 1"
        ).fetchone()
    busy = row[0] if row else "cam00000"
    out["explain"] = explain(store, [busy])
    security = Security.open(PostgresSecurityDb(store), scope)  # the security tables' migrations run here
    try:
        users = make_users(security, scope, operators=max(1, opts["clients"] - 2), busy_camera=busy)
    finally:
        security.close()
    out["review"] = bulk_review(server.connect)
    with api_server(server.store_options(), opts["cameras"], work, pool_size=8) as base:
        out["checks"] = [
            check_pages(base, name, users[name], scope, server.connect)
            for name in ("city-admin", "city-supervisor", "city-op000")
        ]
        out["clients"] = run_clients(base, users, scope, clients=opts["clients"], seconds=opts["api_seconds"])
    return out


def table(result: dict[str, Any]) -> str:
    """The result as a Markdown table (the parts that ran)."""
    rows: list[tuple[str, str, str]] = []
    if "controller" in result:
        rows += _controller_rows(result["controller"])
    if "recover" in result:
        rec = result["recover"]
        rows.append(
            (
                "fence + end open events, per camera",
                f"{rec['per_camera_ms']} ms with {rec['open_events_in_table']} open events in the table: "
                f"{rec['extrapolated_for_all_cameras_s']} s for a restart with "
                f"{result['settings']['cameras']} cameras",
                f"controller recovery timed on {rec['sample_cameras']} cameras",
            )
        )
    if "writes" in result:
        rows += _write_rows(result["writes"])
    if "feed" in result:
        rows += _feed_rows(result["feed"])
    rows.append(("live feed fan-out", "see benchmarks/feed_fanout.py", "not measured here"))
    lines = ["| what | measured | notes |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {n} |" for a, b, n in rows]
    return "\n".join(lines)


def _controller_rows(c: dict[str, Any]) -> list[tuple[str, str, str]]:
    cold, rehome, rebal = c["cold_start"], c["rehome"], c["rebalance"]
    return [
        (
            "cameras / khu phố / nodes x capacity",
            f"{c['cameras']} / {c['khu_pho']} / {c['nodes']} x {c['capacity_per_node']} (15 % spare)",
            "simulated nodes; the real controller, leases in PostgreSQL",
        ),
        (
            "controller cold start",
            f"{cold['rounds']} rounds, {cold['compute_s']} s computed (+ {c['recover_s']} s recovery)",
            f"{cold['lease_takes']} cameras started; their leases in one statement per round",
        ),
        (
            "controller round at steady state",
            f"p50 {c['steady']['round_p50_ms']} ms, p99 {c['steady']['round_p99_ms']} ms",
            f"poll interval {c['poll_interval_s']} s",
        ),
        (
            "10 % of the nodes lost (silent)",
            f"{rehome['cameras_rehomed']} cameras of {rehome['nodes_lost']} nodes running again "
            f"{rehome['loss_to_running_s']} s after the loss ({rehome['rounds']} rounds, "
            f"{rehome['compute_s']} s computed)",
            f"rehome_after_s {c['rehome_after_s']}; {rehome['offline_events']} offline / "
            f"{rehome['online_events']} online events; {c['open_events_in_table']} open events in the table",
        ),
        (
            "10 % more nodes join",
            f"{rebal['moves']} moves in {rebal['rounds']} rounds ({rebal['sim_s']} s live)",
            f"max_moves_per_round {c['max_moves_per_round']}",
        ),
        (
            "khu phố spread: most cameras of one khu phố on a node",
            f"{cold['max_khu_pho_per_node']} / {rehome['max_khu_pho_per_node']} / "
            f"{rebal['max_khu_pho_per_node']}",
            "cold start / after the loss / after the join",
        ),
    ]


def _write_rows(w: dict[str, Any]) -> list[tuple[str, str, str]]:
    sat, paced = w["saturation"], w["paced"]
    return [
        (
            "leases of every camera in one statement",
            f"{w['leases_in_one_statement_s']:.3f} s for {sat['cameras']} cameras",
            "against the controller's cold start, one round trip per camera",
        ),
        (
            "writes, saturation",
            f"{sat['transitions_per_s']} transitions/s ({sat['batches_per_s']} batches/s) = "
            f"{sat['ratio']} x what {sat['cameras']} cameras need",
            f"{sat['writers']} connections; CPU s per 1,000 transitions: PostgreSQL "
            f"{sat['postgres_cpu_s_per_1000_transitions']}, "
            f"writers {sat['client_cpu_s_per_1000_transitions']}",
        ),
        (
            "writes, flat out, live feed on (NOTIFY per batch)",
            f"{w['saturation_notify']['transitions_per_s']} transitions/s "
            f"({w['saturation_notify']['batches_per_s']} batches/s) = {w['saturation_notify']['ratio']} x",
            f"PostgreSQL {w['saturation_notify']['postgres_cpu_s_per_1000_transitions']} CPU s / 1,000",
        ),
        (
            "writes, paced at the cameras' rates",
            f"{paced['transitions_per_s']} of {paced['needed_transitions_per_s']} transitions/s "
            f"({paced['ratio']} x); backlog age p50 {paced['backlog_age_p50_s']} s, "
            f"p99 {paced['backlog_age_p99_s']} s, at the end {paced['backlog_age_at_end_s']} s; "
            f"{paced['batches_due_unwritten_at_end']} batches behind at the end",
            f"{paced['error_count']} errors",
        ),
    ]


def _feed_rows(f: dict[str, Any]) -> list[tuple[str, str, str]]:
    load, api = f["load"], f["clients"]
    gib = 2**30
    rows = [
        (
            "bulk load (logged tables, indexes built after)",
            f"{load['loaded']:,} events in {load['load_s']} s (insert {load['insert_events_s']}, "
            f"classes {load['insert_classes_s']}, indexes {load['indexes_s']}, analyze {load['analyze_s']})",
            f"{load['events_bytes'] / gib:.1f} GiB events + {load['event_classes_bytes'] / gib:.1f} GiB "
            f"class index; {load['open_events']} open",
        ),
    ]
    if "review" in f:
        rev = f["review"]
        rows.append(
            (
                "review items (bulk, one per camera, rule and hour)",
                f"{rev['items']:,} items ({rev['open_items']:,} open) for {rev['events_linked']:,} events, "
                f"{rev['seconds']} s",
                "in PostgreSQL with the accounts, as in a cluster",
            )
        )
    rows += [
        (
            "API GET /events and /review/items, every request",
            f"p50 {api['p50_ms']} ms, p99 {api['p99_ms']} ms, {api['requests_per_s']} requests/s",
            f"{api['clients']} clients, {api['failure_count']} failures",
        ),
    ]
    rows += [
        (f"  {label}", f"p50 {v['p50_ms']} ms, p99 {v['p99_ms']} ms", f"{v['requests']} requests")
        for label, v in api["by_request"].items()
    ]
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="500 cameras, 200,000 events, short runs")
    ap.add_argument("--cameras", type=int, help="default 5000 (500 with --quick)")
    ap.add_argument("--events", type=int, help="events to load, default 10,000,000 (200,000 with --quick)")
    ap.add_argument("--capacity", type=int, default=8, help="cameras per node (khupho bench's live capacity)")
    ap.add_argument("--writers", type=int, default=32, help="writer connections")
    ap.add_argument("--write-seconds", type=float, default=40.0)
    ap.add_argument("--api-seconds", type=float, default=40.0)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument(
        "--max-moves", type=int, default=ClusterConfig.model_fields["max_moves_per_round"].default
    )
    ap.add_argument(
        "--parts",
        nargs="+",
        choices=PARTS,
        default=list(PARTS),
        help="run only these parts, in this order (recover after writes: it times the fences with the "
        "open events the writes left; controller after writes: re-homing with those open events)",
    )
    ap.add_argument("--out", type=Path, default=Path("out/city.json"))
    args = ap.parse_args(argv)
    opts = settings(args)
    work = Path(tempfile.mkdtemp(prefix="khupho-city-"))
    result: dict[str, Any] = {}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        run(opts, work, result)
        result["seconds"] = round(time.perf_counter() - t0, 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        args.out.write_text(json.dumps(result, indent=2))  # what a failed run measured, too
    print(table(result))
    before, after = (", ".join(f"{x:.1f}" for x in result[k]) for k in ("load_before", "load_after"))
    print(f"load average {before} before, {after} after; {result['seconds']} s; wrote {args.out}")


if __name__ == "__main__":
    main()
