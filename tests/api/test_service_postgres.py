"""The whole service on PostgreSQL while the database restarts: nothing lost, nothing doubled."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from api.auth.db_postgres import PostgresSecurityDb
from api.config import parse_config
from api.demo import DEMO_CAMERAS
from api.review.store import ReviewStore
from api.service import Service
from events.model import Event, EventTransition, Phase, TrafficCount
from events.storage.postgres import PostgresEventStore
from ingest.frame import Frame
from pipeline.frame_step import StepResult
from tests.api.support import login
from tests.conftest_pg import remove_postgres, start_postgres

ANALYSIS_FPS = 4


@pytest.mark.slow
def test_postgres_restart_mid_run_loses_nothing(tmp_path: Path, footage_dir: Path, models_dir: Path) -> None:
    server = start_postgres()
    database = {
        "type": "postgres",
        "host": server.host,
        "port": server.port,
        "dbname": "postgres",
        "user": server.user,
        "password": server.password,
        "connect_timeout_s": 2,
    }
    spec = DEMO_CAMERAS["intersection"]  # line crossings: an event and a traffic count each
    config = parse_config(
        {
            "detector": {"model": str(models_dir / "yolov8n-coco.onnx"), "imgsz": 320},
            "storage": {
                "database": database,
                "objects": {"type": "local", "root": str(tmp_path / "media")},
                "snapshots": {"enabled": False},  # media under outages is the upload spool's test
                # Journal and heartbeat in the test's folder, not the working directory's.
                "state_dir": str(tmp_path / "state"),
            },
            "api": {"port": 0},
            "cameras": {
                "intersection": {
                    "replay": {
                        "path": str(footage_dir / spec["clip"]),
                        "analysis_fps": ANALYSIS_FPS,
                        "speed": 2,
                        "loop": True,
                    },
                    "events": {"rules": spec["rules"]},
                }
            },
        }
    )
    emitted: list[tuple[float, EventTransition]] = []
    counted: list[TrafficCount] = []
    analysed: list[float] = []
    lock = threading.Lock()

    def on_analysed(*, frame: Frame, result: StepResult) -> None:
        now = time.monotonic()
        with lock:
            analysed.append(now)
            emitted.extend((now, t) for t in result.transitions)
            counted.extend(result.traffic_counts)

    def emitted_since(t0: float) -> int:
        with lock:
            return sum(1 for t, _ in emitted if t >= t0)

    try:
        service = Service(config)
        service.workers["intersection"].on_analysed = on_analysed
        urls: list[str] = []
        thread = threading.Thread(target=service.serve, kwargs={"on_ready": urls.append}, daemon=True)
        thread.start()
        try:

            def running_normally() -> bool:  # up, some events stored, and a rate to compare with
                with lock:
                    return (
                        bool(urls and analysed and time.monotonic() - analysed[0] > 4) and len(emitted) >= 2
                    )

            deadline = time.monotonic() + 60
            while not running_normally() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert running_normally(), "the service raised no event before the restart"

            # A console session made before the outage (accounts and sessions are in PostgreSQL too).
            client = httpx.Client(base_url=urls[0], timeout=10)
            login(client, "admin", service.first_admin_password)
            assert client.get("/events", params={"limit": 1}).status_code == 200

            # Down for at least 5 s and until the rules have emitted some transitions meanwhile.
            server.stop()
            down_at = time.monotonic()
            max_backlog = 0
            while time.monotonic() - down_at < 5 or (
                emitted_since(down_at) < 2 and time.monotonic() - down_at < 40
            ):
                max_backlog = max(max_backlog, service.sink.backlog)
                time.sleep(0.1)
            # The session's check and a new login say the database is away, as reads do.
            assert client.get("/events").status_code == 503
            with httpx.Client(base_url=urls[0], timeout=10) as other:
                r = other.post(
                    "/auth/login", json={"username": "admin", "password": service.first_admin_password}
                )
                assert r.status_code == 503, r.text
            server.start()
            up_at = time.monotonic()
            during = emitted_since(down_at) - emitted_since(up_at)
            assert during >= 2, "no event happened while PostgreSQL was down"
            assert max_backlog > 0, "nothing was kept for retry while PostgreSQL was down"

            # Reconnected: the kept transitions are written within seconds and the API reads again.
            deadline = time.monotonic() + 20
            while service.sink.backlog and time.monotonic() < deadline:
                time.sleep(0.1)
            assert service.sink.backlog == 0, "the service did not write its backlog after the restart"
            after = time.monotonic()
            while emitted_since(after) < 1 and time.monotonic() - after < 30:
                time.sleep(0.1)
            r = client.get("/events", params={"limit": 5})  # the session from before the outage holds
            client.close()
            assert r.status_code == 200 and r.json()["items"]
        finally:
            service.shutdown()
            thread.join(60)
        assert not thread.is_alive()

        # The cameras kept analysing while the database was down (no wait on a dead server): the
        # analysed rate during the outage is about the rate before it (the first second is warm-up).
        with lock:
            warm = analysed[0] + 1.0
            before = sum(1 for t in analysed if warm <= t < down_at) / (down_at - warm)
            while_down = sum(1 for t in analysed if down_at <= t < up_at) / (up_at - down_at)
        assert down_at - warm >= 1.0
        assert while_down >= 0.7 * before, (while_down, before)

        # Every event the rules emitted is stored once, as last emitted; every count added once.
        last: dict[str, Event] = {}
        phases: dict[str, Phase] = {}
        for _, t in emitted:
            last[t.event.id] = t.event
            phases[t.event.id] = t.phase
        store = PostgresEventStore(
            host=server.host, port=server.port, dbname="postgres", user=server.user, password=server.password
        )
        try:
            stored, cursor = store.list_events(limit=10_000)
            assert cursor is None
            by_id = {e.id: e for e in stored if not e.type.startswith("camera_")}
            assert len(stored) == store.count_events() == len({e.id for e in stored})
            assert set(by_id) == set(last)
            for event_id, event in last.items():
                if phases[event_id] is Phase.END:
                    assert by_id[event_id] == event
                else:  # still open when the service stopped: ended by the stop
                    assert not by_id[event_id].active
            assert sum(r.count for r in store.traffic()) == sum(c.count for c in counted) > 0
            # Every event was filed for review too, in the same database (the feeder waits out an outage).
            review = ReviewStore(PostgresSecurityDb(store))
            assert all(review.item_of_event(event_id) is not None for event_id in last)
        finally:
            store.close()
    finally:
        remove_postgres(server)
