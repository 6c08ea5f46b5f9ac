"""Fan-out of the live feed shared over PostgreSQL LISTEN/NOTIFY (``events/storage/pg_feed.py``).

    python -m benchmarks.feed_fanout [--quick] [--duration 4]

W writer threads (in this process, each with its own ``PostgresEventStore(notify_feed=True)``) store
synthetic START transitions (each a new event) at a total target rate R/s, in batches every 50 ms
as camera workers' sinks do. P simulated API processes, each a real separate Python process
(``multiprocessing``, spawn) with its own ``PgFeedListener`` and ``EventBus``, feed K subscribers
that are asyncio tasks on one event loop, as SSE clients are in the API. Reported per run: the rate
achieved, the latency from the writer's ``apply_batch`` call (so the commit included) to a
subscriber's ``await get()`` (p50/p99 over three sampled subscribers per process: the first, the
middle and the last subscribed, which the bus serves last; the first half second left out), and
whether every subscriber of every process got every stored transition exactly once, in one order.
Needs the PostgreSQL 15 binaries (as the tests): a throwaway server on 127.0.0.1 is started for the
run (``--host`` etc. use an existing one instead; a new schema is made and dropped per run).

Times are ``time.monotonic_ns()``: CLOCK_MONOTONIC, one clock for all processes of the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

BATCH_INTERVAL_S = 0.05
WARM_UP_S = 0.5  # latencies of transitions written in the first half second are left out
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _listen(pipe: Any, options: dict[str, Any], subscribers: int) -> None:
    """One simulated API process: listener -> bus -> ``subscribers`` asyncio consumers."""
    from events.storage.bus import EventBus, SubscriptionClosed
    from events.storage.pg_feed import PgFeedListener
    from events.storage.postgres import PostgresEventStore

    store = PostgresEventStore(**options, pool_size=1)
    bus = EventBus(maxsize=20_000, max_subscribers=subscribers, history=16)
    subs = [bus.subscribe(name=f"sse{i}") for i in range(subscribers)]
    sampled = sorted({0, subscribers // 2, subscribers - 1})
    counts = [0] * subscribers
    hashes = [0] * subscribers
    ids: list[str] = []  # subscriber 0's, to check against what was stored
    latency_ns: list[tuple[int, int]] = []  # (stamped at, latency)

    async def consume(i: int) -> None:
        sub, sample = subs[i], i in sampled
        while True:
            try:
                message = await sub.get()
            except SubscriptionClosed:
                return
            now = time.monotonic_ns()
            event = message.transition.event
            counts[i] += 1
            hashes[i] = hash((hashes[i], event.id))
            if sample:
                latency_ns.append((event.data["t"], now - event.data["t"]))
            if i == 0:
                ids.append(event.id)

    async def main() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        tasks = [asyncio.create_task(consume(i)) for i in range(subscribers)]
        listener = PgFeedListener(store, bus, watermark_interval_s=0.5)
        listener.start()
        ready = await loop.run_in_executor(None, listener.wait_ready, 30.0)
        pipe.send("ready" if ready else "not ready")
        command, expected, warm_from_ns = await loop.run_in_executor(None, pipe.recv)
        assert command == "stop"
        deadline = time.monotonic() + 30
        while min(counts) < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # anything more (a duplicate) would arrive now
        listener.close()
        stats = listener.stats()
        bus.close()
        await asyncio.gather(*tasks)
        return {
            "counts_min": min(counts),
            "counts_max": max(counts),
            "order_mismatch": sum(h != hashes[0] for h in hashes),
            "ids": ids,
            "latency_ns": [lat for stamp, lat in latency_ns if stamp >= warm_from_ns],
            "dropped": bus.stats().dropped,
            "duplicates": stats.duplicates,
            "reconnects": stats.reconnects,
        }

    try:
        pipe.send(asyncio.run(main()))
    finally:
        store.close()


class _Writer(threading.Thread):
    def __init__(self, store: Any, index: int, rate: float, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.store, self.index, self.rate, self.stop = store, index, rate, stop
        self.ids: list[str] = []
        self.apply_s: list[float] = []

    def run(self) -> None:
        from events.model import Event, EventTransition, EventType, Phase

        began = time.monotonic()
        n = tick = 0
        while not self.stop.is_set():
            # Batch ``tick`` is due at its interval's start (at once when behind: the rate is kept).
            wait = began + tick * BATCH_INTERVAL_S - time.monotonic()
            tick += 1
            if wait > 0 and self.stop.wait(wait):
                break
            due = int(tick * BATCH_INTERVAL_S * self.rate)
            if due <= n:
                continue
            stamp = time.monotonic_ns()
            batch = [
                EventTransition(
                    phase=Phase.START,
                    event=Event(
                        id=f"w{self.index}-{i}",
                        camera=f"cam{self.index}",
                        rule="gate",
                        type=EventType.ZONE_INTRUSION,
                        classes=["person"],
                        track_ids=[i],
                        start_pts=float(i),
                        start_time=T0,
                        data={"t": stamp},
                    ),
                )
                for i in range(n, due)
            ]
            t = time.perf_counter()
            self.store.apply_batch(batch, (), batch_id=f"w{self.index}:{n}")
            self.apply_s.append(time.perf_counter() - t)
            self.ids += [tr.event.id for tr in batch]
            n = due


def run_fanout(
    options: dict[str, Any],
    *,
    writers: int = 2,
    rate: float = 1000.0,
    processes: int = 2,
    subscribers: int = 1,
    duration_s: float = 4.0,
) -> dict[str, Any]:
    """One run on the database of ``options`` (``PostgresEventStore`` keywords, no schema: a new
    one is made and dropped); the measures as a dict (see the module's docstring)."""
    from events.storage.postgres import PostgresEventStore

    schema = f"feed_{uuid.uuid4().hex[:12]}"
    options = {**options, "schema": schema}
    stores = [PostgresEventStore(**options, pool_size=1, notify_feed=True) for _ in range(writers)]
    ctx = multiprocessing.get_context("spawn")
    children = []
    try:
        for _ in range(processes):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_listen, args=(child, options, subscribers), daemon=True)
            proc.start()
            children.append((proc, parent))
        for proc, pipe in children:
            if not pipe.poll(60) or pipe.recv() != "ready":
                raise RuntimeError(f"listener process {proc.pid} did not get ready")
        stop = threading.Event()
        threads = [_Writer(s, i, rate / writers, stop) for i, s in enumerate(stores)]
        began = time.monotonic()
        warm_from_ns = time.monotonic_ns() + int(WARM_UP_S * 1e9)
        for t in threads:
            t.start()
        time.sleep(duration_s)
        stop.set()
        for t in threads:
            t.join(30)
        elapsed = time.monotonic() - began
        stored = [i for t in threads for i in t.ids]
        for _, pipe in children:
            pipe.send(("stop", len(stored), warm_from_ns))
        results = []
        for proc, pipe in children:
            if not pipe.poll(90):
                raise RuntimeError(f"listener process {proc.pid} did not report")
            results.append(pipe.recv())
    finally:
        for proc, _ in children:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
        with stores[0].dedicated_connection("khupho-bench") as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        for s in stores:
            s.close()
    want = sorted(stored)
    exact = all(
        r["counts_min"] == r["counts_max"] == len(stored)
        and r["order_mismatch"] == 0
        and r["dropped"] == 0
        and sorted(r["ids"]) == want
        for r in results
    )
    latencies = sorted(ns / 1e6 for r in results for ns in r["latency_ns"])
    applies = [s for t in threads for s in t.apply_s]

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")

    return {
        "writers": writers,
        "target_rate": rate,
        "processes": processes,
        "subscribers": subscribers,
        "stored": len(stored),
        "rate": len(stored) / elapsed,
        "apply_ms_p50": 1000 * statistics.median(applies) if applies else float("nan"),
        "latency_ms_p50": pct(0.5),
        "latency_ms_p99": pct(0.99),
        "latency_ms_max": latencies[-1] if latencies else float("nan"),
        "deliveries": sum(r["counts_min"] for r in results) * subscribers,
        "exactly_once": exact,
        "dropped": sum(r["dropped"] for r in results),
    }


DEFAULT_RUNS: list[dict[str, Any]] = [
    # Light subscribers: how fast PostgreSQL and one listener per process deliver.
    *({"writers": 4, "rate": r, "processes": 2, "subscribers": 1} for r in (500, 2000, 5000, 10000, 20000)),
    # SSE-sized fan-out: 1000 asyncio subscribers per API process.
    *({"writers": 4, "rate": r, "processes": 2, "subscribers": 1000} for r in (50, 100, 200, 400)),
]
QUICK_RUNS: list[dict[str, Any]] = [
    {"writers": 2, "rate": 500, "processes": 2, "subscribers": 1},
    {"writers": 2, "rate": 100, "processes": 2, "subscribers": 200},
]


def format_table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| W | target/s | P | K | stored/s | apply p50 ms | latency p50 ms | p99 ms | max ms "
        "| deliveries | exactly once |\n|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [
        f"| {r['writers']} | {r['target_rate']:.0f} | {r['processes']} | {r['subscribers']} | "
        f"{r['rate']:.0f} | {r['apply_ms_p50']:.1f} | {r['latency_ms_p50']:.1f} | "
        f"{r['latency_ms_p99']:.1f} | {r['latency_ms_max']:.1f} | {r['deliveries']} | "
        f"{'yes' if r['exactly_once'] else 'NO'} |"
        for r in rows
    ]
    return "\n".join([head, *lines])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="two small runs (a smoke test)")
    ap.add_argument("--duration", type=float, default=4.0, help="seconds of writing per run")
    ap.add_argument("--host", help="an existing server (default: start a throwaway one)")
    ap.add_argument("--port", type=int, default=5432)
    ap.add_argument("--dbname", default="khupho")
    ap.add_argument("--user", default="khupho")
    args = ap.parse_args(argv)
    server = None
    if args.host:
        options: dict[str, Any] = {
            "host": args.host,
            "port": args.port,
            "dbname": args.dbname,
            "user": args.user,
            "password": os.environ.get("KHUPHO_PG_PASSWORD"),
        }
    else:
        from tests.conftest_pg import start_postgres

        server = start_postgres()
        options = server.store_options()
    try:
        rows = []
        for run in QUICK_RUNS if args.quick else DEFAULT_RUNS:
            rows.append(run_fanout(options, duration_s=args.duration, **run))
            print(format_table(rows[-1:]).splitlines()[-1], flush=True)
    finally:
        if server is not None:
            from tests.conftest_pg import remove_postgres

            remove_postgres(server)
    print()
    print(format_table(rows))
    print(f"\nload average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0 if all(r["exactly_once"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
