"""Load on the public traffic routes while the service analyses replayed cameras.

The service (``khupho run``'s :class:`api.service.Service`, HTTP server on 127.0.0.1)
analyses ``--cameras`` replays of the highway clip with traffic analysis (the
documented calibration) and one road segment per camera. Three windows of
``--seconds`` each are measured:

1. ``before``: no clients;
2. ``load``: ``--sse-clients`` Server-Sent-Events clients on ``/public/traffic/stream``
   plus ``--rps`` requests per second on ``/public/traffic`` (open loop: sent on a fixed
   schedule whatever the answers do), from a separate process (raw asyncio sockets for
   the streams, 32 keep-alive raw HTTP/1.1 connections for the polls);
3. ``after``: no clients again (the machine's drift between the two quiet windows is
   the noise floor of the comparison).

Reported: the cameras' analysed frames per second in each window and the ratio of the
``load`` window to the mean of the quiet ones (target >= 0.95); p50/p99 latency of the
polls and of each stream's first message; errors; the load average. Everything stays on
loopback and is bounded: clients and windows have a fixed count and length.

    python -m benchmarks.public_load --footage ../shared/footage --models ../shared/models \\
        --cameras 4 --sse-clients 500 --rps 200 --seconds 30 --out out/public_load.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from api.config import parse_config
from api.service import Service
from benchmarks.highway_calibration import HIGHWAY_TRAFFIC

CLIP = "traffic_highway_cctv_320x240_mpeg4.avi"
POLL_CONNECTIONS = 32  # keep-alive connections the polls are spread over
WARMUP_S = 3.0  # the load runs this long (streams connecting) before anything is measured


def build_service(footage: Path, models: Path, cameras: int, workdir: Path) -> Service:
    cams = {
        f"cam{i}": {"replay": {"path": str(footage / CLIP), "analysis_fps": 5}, "traffic": HIGHWAY_TRAFFIC}
        for i in range(cameras)
    }
    segments = [
        {"id": f"seg-{i}", "name": f"Đoạn {i}", "name_en": f"Segment {i}", "lanes": [f"cam{i}/away"]}
        for i in range(cameras)
    ]
    config = parse_config(
        {
            "detector": {"model": str(models / "yolov8n-coco.onnx"), "imgsz": 320},
            "storage": {
                "database": {"path": str(workdir / "events.db")},
                "objects": {"root": str(workdir / "media")},
                "snapshots": {"enabled": False},
            },
            "api": {"port": 0},
            "traffic": {"segments": segments, "max_stream_clients": 2000},
            "cameras": cams,
        }
    )
    return Service(config)


def analysed(service: Service) -> dict[str, int]:
    return {cam: w.status().frames_analysed for cam, w in service.workers.items()}


def window_fps(service: Service, seconds: float) -> dict[str, float]:
    a, t0 = analysed(service), time.monotonic()
    time.sleep(seconds)
    b, t1 = analysed(service), time.monotonic()
    return {cam: (b[cam] - a[cam]) / (t1 - t0) for cam in a}


# -- the load generator (its own process) ------------------------------------------------------


async def _sse_client(host: str, port: int, stop: asyncio.Event, out: dict[str, Any]) -> None:
    t0 = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            b"GET /public/traffic/stream HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n"
        )
        status = await reader.readline()
        if b" 200 " not in status:
            out["errors"] += 1
            writer.close()
            return
        first = True
        while not stop.is_set():
            try:
                line = await asyncio.wait_for(reader.readline(), 1.0)
            except TimeoutError:
                continue
            if not line:
                out["errors"] += 1  # the server closed a stream it should have kept
                break
            if line.startswith(b"event: traffic"):
                out["messages"] += 1
                if first:
                    out["first_message_s"].append(time.perf_counter() - t0)
                    first = False
        writer.close()
    except OSError:
        out["errors"] += 1


async def _poll_worker(
    host: str, port: int, schedule: asyncio.Queue[float], stop: asyncio.Event, out: dict[str, Any]
) -> None:
    """One keep-alive connection taking scheduled polls in turn (raw HTTP/1.1: a client library's own
    overhead would be measured otherwise). A connection the server closed while idle (its keep-alive
    timeout) is opened again and the poll retried once."""
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    request = b"GET /public/traffic HTTP/1.1\r\nHost: bench\r\n\r\n"

    async def poll() -> bytes:
        nonlocal conn
        if conn is None:
            conn = await asyncio.open_connection(host, port)
        reader, writer = conn
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await reader.readexactly(length)
        return head

    while not stop.is_set():
        try:
            due = await asyncio.wait_for(schedule.get(), 0.5)
        except TimeoutError:
            continue
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        t0 = time.perf_counter()
        try:
            try:
                head = await poll()
            except (OSError, asyncio.IncompleteReadError):
                out["reconnects"] += 1
                if conn is not None:
                    conn[1].close()
                conn = None
                head = await poll()
        except (OSError, asyncio.IncompleteReadError):
            out["errors"] += 1
            conn = None
            continue
        if head.startswith(b"HTTP/1.1 200") and b"etag:" in head.lower():
            if t0 >= out["measure_from"]:  # after the streams' connection storm
                out["latency_s"].append(time.perf_counter() - t0)
                out["late_s"].append(max(0.0, t0 - due))
        else:
            out["errors"] += 1
    if conn is not None:
        conn[1].close()


async def _poller(
    host: str, port: int, rps: float, connections: int, stop: asyncio.Event, out: dict[str, Any]
) -> None:
    """Open loop: a poll is due every 1/rps seconds whatever the answers do; free connections take them."""
    schedule: asyncio.Queue[float] = asyncio.Queue()
    workers = [asyncio.create_task(_poll_worker(host, port, schedule, stop, out)) for _ in range(connections)]
    start = time.perf_counter()
    n = 0
    while not stop.is_set():
        n += 1
        due = start + n / rps
        schedule.put_nowait(due)
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
    out["not_sent"] = schedule.qsize()  # due but no connection was free: the server fell behind
    await asyncio.gather(*workers, return_exceptions=True)


async def _load(base: str, sse_clients: int, rps: float, seconds: float) -> dict[str, Any]:
    host, port = base.removeprefix("http://").split(":")
    stop = asyncio.Event()
    sse: dict[str, Any] = {"messages": 0, "errors": 0, "first_message_s": []}
    poll: dict[str, Any] = {"latency_s": [], "late_s": [], "errors": 0, "not_sent": 0, "reconnects": 0}
    poll["measure_from"] = time.perf_counter() + WARMUP_S
    clients = [asyncio.create_task(_sse_client(host, int(port), stop, sse)) for _ in range(sse_clients)]
    poller = asyncio.create_task(_poller(host, int(port), rps, POLL_CONNECTIONS, stop, poll))
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(poller, *clients, return_exceptions=True)
    return {"sse": sse, "poll": poll}


def _load_process(base: str, sse_clients: int, rps: float, seconds: float, conn: Any) -> None:
    conn.send(asyncio.run(_load(base, sse_clients, rps, seconds)))


# -- the benchmark ----------------------------------------------------------------------------------


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def run(
    footage: Path, models: Path, cameras: int, sse_clients: int, rps: float, seconds: float
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="khupho-load-") as tmp:
        service = build_service(footage, models, cameras, Path(tmp))
        urls: list[str] = []
        runner = threading.Thread(target=service.serve, kwargs={"on_ready": urls.append}, daemon=True)
        runner.start()
        try:
            deadline = time.monotonic() + 30
            while not urls and time.monotonic() < deadline:
                time.sleep(0.1)
            base = urls[0]
            time.sleep(min(10.0, seconds / 2))  # warm-up: models loaded, queues steady
            load_before = os.getloadavg()[0]
            before = window_fps(service, seconds)

            parent, child = mp.Pipe()
            proc = mp.get_context("spawn").Process(
                target=_load_process, args=(base, sse_clients, rps, seconds + 6.0, child)
            )
            proc.start()
            time.sleep(WARMUP_S)  # let the streams connect before measuring
            during = window_fps(service, seconds)
            load = parent.recv() if parent.poll(seconds + 120) else {"sse": {}, "poll": {}}
            proc.join(30)
            feed_subscribers_after = service.traffic_board.feed.subscribers if service.traffic_board else 0

            after = window_fps(service, seconds)
            load_after = os.getloadavg()[0]
        finally:
            service.shutdown()
            runner.join(30)
    quiet = {cam: (before[cam] + after[cam]) / 2 for cam in before}
    total = {k: sum(v.values()) for k, v in (("before", before), ("load", during), ("after", after))}
    poll, sse = load.get("poll", {}), load.get("sse", {})
    latencies = poll.get("latency_s", [])
    firsts = sse.get("first_message_s", [])
    return {
        "cameras": cameras,
        "sse_clients": sse_clients,
        "rps_target": rps,
        "seconds": seconds,
        "analysed_fps": {"before": before, "load": during, "after": after},
        "analysed_fps_total": total,
        "ratio_load_vs_quiet": total["load"] / max(1e-9, sum(quiet.values())),
        "ratio_after_vs_before": total["after"] / max(1e-9, total["before"]),
        "poll": {
            "requests": len(latencies),
            "rps_achieved": len(latencies) / (seconds + 6.0 - WARMUP_S),
            "p50_ms": _ms(_pct(latencies, 50)),
            "p99_ms": _ms(_pct(latencies, 99)),
            "late_p99_ms": _ms(_pct(poll.get("late_s", []), 99)),  # sent this long after due (client side)
            "not_sent": poll.get("not_sent"),
            "reconnects": poll.get("reconnects"),
            "errors": poll.get("errors"),
        },
        "sse": {
            "connected": len(firsts),
            "first_message_p50_ms": _ms(_pct(firsts, 50)),
            "first_message_p99_ms": _ms(_pct(firsts, 99)),
            "messages": sse.get("messages"),
            "errors": sse.get("errors"),
        },
        "stream_subscribers_left_after": feed_subscribers_after,
        "load_average": {"before": round(load_before, 2), "after": round(load_after, 2)},
        "cpus": os.cpu_count(),
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


def table(result: dict[str, Any]) -> str:
    t = result["analysed_fps_total"]
    p, s = result["poll"], result["sse"]
    return "\n".join(
        [
            "| window | cameras' analysed fps (sum) | polls /public/traffic p50 / p99 "
            "| SSE first message p50 / p99 |",
            "|---|---:|---|---|",
            f"| before (no clients) | {t['before']:.2f} | | |",
            f"| load: {result['sse_clients']} SSE + {result['rps_target']:.0f} req/s | {t['load']:.2f} "
            f"| {p['p50_ms']} / {p['p99_ms']} ms ({p['requests']} requests, {p['rps_achieved']:.0f}/s, "
            f"{p['errors']} errors) | {s['first_message_p50_ms']} / {s['first_message_p99_ms']} ms "
            f"({s['connected']} connected, {s['errors']} errors) |",
            f"| after (no clients) | {t['after']:.2f} | | |",
            f"| **load / quiet** | **{result['ratio_load_vs_quiet']:.3f}** (after / before "
            f"{result['ratio_after_vs_before']:.3f}) | | |",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--footage", type=Path, default=Path(os.environ.get("KHUPHO_SHARED", "../shared")) / "footage"
    )
    ap.add_argument(
        "--models", type=Path, default=Path(os.environ.get("KHUPHO_SHARED", "../shared")) / "models"
    )
    ap.add_argument("--cameras", type=int, default=4, choices=range(1, 17))
    ap.add_argument("--sse-clients", type=int, default=500, choices=range(0, 2001), metavar="0..2000")
    ap.add_argument("--rps", type=float, default=200.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    if not 0 < args.rps <= 1000 or not 5 <= args.seconds <= 300:
        raise SystemExit("--rps must be in (0, 1000] and --seconds in [5, 300]")
    result = run(args.footage, args.models, args.cameras, args.sse_clients, args.rps, args.seconds)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "analysed_fps"}, indent=2))
    print(table(result))
    print(f"median per-camera fps before: {statistics.median(result['analysed_fps']['before'].values()):.2f}")


if __name__ == "__main__":
    main()
