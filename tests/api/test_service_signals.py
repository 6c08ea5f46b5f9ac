"""`khupho run` as deployed, in its own process: SIGTERM under load stops it cleanly, and after
`kill -9` the next start ends what the dead run left open and stores what its journal held."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from api.demo import DEMO_CAMERAS
from tests.conftest import REPO

pytestmark = pytest.mark.slow


def _config(tmp: Path, footage: Path, models: Path, *, shutdown_timeout_s: float = 10) -> Path:
    plaza_rules = [
        {
            "name": "plaza_crowd",
            "type": "crowding",
            "classes": ["person"],
            "min_count": 4,
            "min_duration_s": 1,
            "polygon": [[200, 100], [1000, 100], [1000, 650], [200, 650]],
        },
        {
            "name": "plaza_loitering",
            "type": "loitering",
            "classes": ["person"],
            "min_dwell_s": 2,
            "polygon": [[200, 100], [1000, 100], [1000, 650], [200, 650]],
        },
    ]
    config = {
        "detector": {"model": str(models / "yolov8n-coco.onnx"), "imgsz": 320},
        "storage": {
            "database": {"path": str(tmp / "events.db")},
            "objects": {"type": "local", "root": str(tmp / "media")},
        },
        "api": {"port": 0},
        "shutdown_timeout_s": shutdown_timeout_s,
        "cameras": {
            "intersection": {
                "replay": {"path": str(footage / DEMO_CAMERAS["intersection"]["clip"]), "analysis_fps": 3},
                "events": {"rules": DEMO_CAMERAS["intersection"]["rules"]},
            },
            "plaza": {
                "replay": {"path": str(footage / DEMO_CAMERAS["plaza"]["clip"]), "analysis_fps": 3},
                "events": {"rules": plaza_rules},
            },
        },
    }
    path = tmp / "khupho.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "run", "--config", str(config)],
        cwd=REPO,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while b"khupho is serving" not in log.read_bytes():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    return proc


def _query(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute(sql).fetchall()


def _wait_for_open_events(db: Path, at_least: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists():
            try:
                if _query(db, "SELECT COUNT(*) FROM events WHERE active = 1")[0][0] >= at_least:
                    return
            except sqlite3.OperationalError:
                pass  # created but not migrated yet
        time.sleep(0.5)
    raise AssertionError(f"fewer than {at_least} open events after {timeout} s")


def _crossings_match_counts(db: Path) -> tuple[int, int]:
    crossings = _query(db, "SELECT COUNT(*) FROM events WHERE type = 'line_crossing'")[0][0]
    counted = _query(db, "SELECT COALESCE(SUM(count), 0) FROM traffic")[0][0]
    return crossings, counted


def test_sigterm_under_load_stops_cleanly(tmp_path: Path, footage_dir: Path, models_dir: Path) -> None:
    config = _config(tmp_path, footage_dir, models_dir)
    log = tmp_path / "run.log"
    proc = _start(config, log)
    db = tmp_path / "events.db"
    _wait_for_open_events(db, 2)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(30)
    took = time.monotonic() - t0
    text = log.read_text()
    assert code == 0, text
    assert took < 10 + 3, took  # the configured bound, plus the interpreter's own exit
    assert "SIGTERM: stopping" in text and "stopped in" in text
    assert _query(db, "SELECT COUNT(*) FROM events WHERE active = 1") == [(0,)]
    ends = _query(
        db, "SELECT json_extract(data, '$.end_reason') FROM events WHERE type IN ('crowding', 'loitering')"
    )
    assert ends and all(reason in ("closed", None) for (reason,) in ends)
    # Every snapshot recorded for an event is on disk, and no event lost its count.
    keys = [k for (k,) in _query(db, "SELECT key FROM snapshots")]
    assert keys and all((tmp_path / "media" / k).is_file() for k in keys)
    crossings, counted = _crossings_match_counts(db)
    assert crossings == counted
    journal = tmp_path / "state" / "journal.jsonl"
    assert not journal.exists() or not journal.read_bytes()


def test_a_second_signal_exits_at_once(tmp_path: Path, footage_dir: Path, models_dir: Path) -> None:
    # A long stop budget and a stop that takes time: the second SIGTERM must not wait for it.
    config = _config(tmp_path, footage_dir, models_dir, shutdown_timeout_s=60)
    log = tmp_path / "run.log"
    proc = _start(config, log)
    with sqlite3.connect(tmp_path / "events.db", isolation_level=None) as locker:
        locker.execute("BEGIN EXCLUSIVE")  # the writer cannot finish: the stop would wait its 60 s
        time.sleep(2)
        proc.send_signal(signal.SIGTERM)
        time.sleep(1.5)
        assert proc.poll() is None
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(10)
        assert time.monotonic() - t0 < 3
        locker.execute("ROLLBACK")
    assert code == 128 + signal.SIGTERM
    assert "again: exiting at once" in log.read_text()


def test_kill_9_then_restart_ends_open_events_and_replays_the_journal(
    tmp_path: Path, footage_dir: Path, models_dir: Path
) -> None:
    config = _config(tmp_path, footage_dir, models_dir)
    db = tmp_path / "events.db"
    proc = _start(config, tmp_path / "first.log")
    _wait_for_open_events(db, 2)
    time.sleep(1.5)  # a heartbeat after the events opened
    proc.kill()
    proc.wait(10)
    left_open = {row[0] for row in _query(db, "SELECT id FROM events WHERE active = 1")}
    assert len(left_open) >= 2
    heartbeat = float((tmp_path / "state" / "heartbeat").read_text())

    second = _start(config, tmp_path / "second.log")
    second.send_signal(signal.SIGTERM)
    assert second.wait(30) == 0
    rows = _query(
        db,
        "SELECT id, active, json_extract(data, '$.end_reason'), end_us FROM events WHERE id IN ("
        + ",".join(f"'{i}'" for i in left_open)
        + ")",
    )
    assert len(rows) == len(left_open)
    for _id, active, reason, end_us in rows:
        assert active == 0 and reason == "interrupted"
        assert abs(end_us / 1e6 - heartbeat) < 1.5  # ended when the dead run was last known alive
    assert "ended" in (tmp_path / "second.log").read_text()
    assert _query(db, "SELECT COUNT(*) FROM events WHERE active = 1") == [(0,)]
    crossings, counted = _crossings_match_counts(db)
    assert crossings == counted
