"""The live feed across processes: a separate Python process stores events with notify on; the API in
this process, fed by a :class:`PgFeedListener`, streams them over SSE to a logged-in client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.metrics import KhuphoMetrics
from events.storage.bus import EventBus
from events.storage.objects import LocalObjectStore
from events.storage.pg_feed import PgFeedListener
from events.storage.postgres import PostgresEventStore
from tests.api.support import Parts, login, open_security
from tests.api.test_sse import Reader, live_server
from tests.conftest_pg import PgServer, postgres  # noqa: F401 - the session's PostgreSQL server fixture

REPO = Path(__file__).resolve().parents[2]

# The writer process: opens the store with notify on, says "ready", waits for "go", then stores a
# START and an END per event, one batch each, as a camera worker's sink would.
WRITER = """
import json, sys
from datetime import UTC, datetime, timedelta
from events.model import Event, EventTransition, EventType, Phase
from events.storage.postgres import PostgresEventStore

options, count = json.loads(sys.argv[1]), int(sys.argv[2])
store = PostgresEventStore(**options, notify_feed=True)
print("ready", flush=True)
sys.stdin.readline()
t0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
for i in range(count):
    ev = Event(id=f"x{i:03d}", camera="cam1", rule="gate", type=EventType.ZONE_INTRUSION,
               classes=["person"], start_pts=float(i), start_time=t0 + timedelta(seconds=i))
    ended = ev.model_copy(update={"active": False, "end_pts": i + 0.5, "end_time": ev.start_time})
    store.apply_batch([EventTransition(phase=Phase.START, event=ev)], (), batch_id=f"w:{i}:s")
    store.apply_batch([EventTransition(phase=Phase.END, event=ended)], (), batch_id=f"w:{i}:e")
store.close()
print("done", flush=True)
"""


@pytest.fixture
def schema(postgres: PgServer) -> Iterator[str]:  # noqa: F811 - the fixture imported above
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    with postgres.connect() as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


@pytest.mark.slow
def test_events_stored_by_another_process_stream_to_an_sse_client(
    postgres: PgServer,  # noqa: F811
    schema: str,
    tmp_path: Path,
) -> None:
    options = {**postgres.store_options(), "schema": schema}
    store = PostgresEventStore(**options, pool_size=2)  # type: ignore[arg-type]
    metrics = KhuphoMetrics()
    parts = Parts(
        store=store,  # type: ignore[arg-type]
        objects=LocalObjectStore(tmp_path / "media"),
        bus=EventBus(),
        metrics=metrics,
        security=open_security(tmp_path / "security.db", metrics.registry),
    )
    listener = PgFeedListener(store, parts.bus, watermark_interval_s=0.2)
    listener.start()
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, json.dumps(options), "5"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert listener.wait_ready(15)
        assert writer.stdout is not None and writer.stdin is not None
        assert writer.stdout.readline().strip() == "ready"
        with live_server(parts, heartbeat_s=0.5) as url, httpx.Client(timeout=5) as client:
            login(client, base=url)
            reader = Reader(client, f"{url}/events/stream")
            try:
                deadline = time.monotonic() + 5
                while parts.bus.stats().subscribers < 1:
                    assert time.monotonic() < deadline, "the SSE client did not subscribe"
                    time.sleep(0.02)
                writer.stdin.write("go\n")
                writer.stdin.flush()
                got = [reader.next(timeout=10) for _ in range(10)]
                assert [(m.event, m.data["event_id"]) for m in got] == [
                    (phase, f"x{i:03d}") for i in range(5) for phase in ("start", "end")
                ]
                assert got[-1].data["event"]["active"] is False
                # What the feed shows, the API can read: the same database, whichever process wrote it.
                r = client.get(f"{url}/events/x004")
                assert r.status_code == 200 and r.json()["active"] is False
            finally:
                reader.close()
        assert writer.stdout.readline().strip() == "done"
        assert writer.wait(10) == 0
        stats = listener.stats()
        assert stats.published == 10 and stats.duplicates == 0
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait(5)
        listener.close()
        parts.security.close()
        store.close()
