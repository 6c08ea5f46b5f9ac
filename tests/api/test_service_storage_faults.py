"""The running service while its storage misbehaves: the cameras keep their pace, nothing is lost."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from api.config import parse_config
from api.demo import DEMO_CAMERAS
from api.service import Service
from events.model import Phase
from ingest.frame import Frame
from pipeline import StepResult

pytestmark = pytest.mark.slow

FPS = 4.0
WINDOW_S = 15.0


def _service(tmp: Path, footage: Path, models: Path) -> Service:
    cameras = {
        name: {
            "replay": {"path": str(footage / DEMO_CAMERAS[name]["clip"]), "analysis_fps": FPS},
            "events": {"rules": DEMO_CAMERAS[name]["rules"]},
        }
        for name in ("intersection", "plaza", "street")
    }
    config = parse_config(
        {
            "detector": {"model": str(models / "yolov8n-coco.onnx"), "imgsz": 320},
            "storage": {
                # A short busy timeout: a locked database fails fast and the writer retries.
                "database": {"path": str(tmp / "events.db")},
                "objects": {"type": "local", "root": str(tmp / "media")},
            },
            "api": {"port": 0},
            "cameras": cameras,
        }
    )
    return Service(config)


def test_a_locked_sqlite_delays_storage_not_the_cameras(
    tmp_path: Path, footage_dir: Path, models_dir: Path
) -> None:
    service = _service(tmp_path, footage_dir, models_dir)
    # When each analysed frame left its decoder: a window counts the frames decoded in it that were
    # analysed, so a frame still queued at the window's end is not mistaken for a lost one.
    decoded_at: list[tuple[str, float]] = []
    emitted: dict[str, Phase] = {}
    lock = threading.Lock()

    def on_analysed(*, frame: Frame, result: StepResult) -> None:
        with lock:
            decoded_at.append((frame.camera, frame.wall_time))
            for t in result.transitions:
                emitted[t.event.id] = t.phase

    for worker in service.workers.values():
        worker.on_analysed = on_analysed
    service.start()
    try:
        time.sleep(4)  # settle: model warm, sources at their pace

        normal_span = (time.time(), time.time() + WINDOW_S)
        time.sleep(WINDOW_S)
        locker = sqlite3.connect(tmp_path / "events.db", isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock for 15 s
        locked_span = (time.time(), time.time() + WINDOW_S)
        try:
            time.sleep(WINDOW_S)
            backlog_while_locked = service.sink.backlog
            age_while_locked = service.sink.oldest_unwritten_age()
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        time.sleep(2)  # frames decoded at the window's end get analysed
        assert service.sink.flush(timeout=30)
    finally:
        service.stop()

    def window(span: tuple[float, float]) -> Counter[str]:
        return Counter(cam for cam, t in decoded_at if span[0] <= t < span[1])

    normal, locked = window(normal_span), window(locked_span)
    for cam in ("intersection", "plaza", "street"):
        assert normal[cam] >= 0.9 * FPS * WINDOW_S, normal
        assert abs(locked[cam] - normal[cam]) <= 0.05 * normal[cam], (cam, normal, locked)
    assert backlog_while_locked > 0 and age_while_locked > 5  # the storage, not the cameras, fell behind
    with sqlite3.connect(tmp_path / "events.db") as db:
        stored = dict(db.execute("SELECT id, phase_rank FROM events").fetchall())
    rank = {Phase.START: 0, Phase.UPDATE: 1, Phase.END: 2}
    assert emitted and set(emitted) <= set(stored)
    assert all(stored[i] == rank[phase] for i, phase in emitted.items() if phase is Phase.END)
