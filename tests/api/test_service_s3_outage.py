"""S3 (a real SeaweedFS) stopped for a minute while three cameras raise events: every snapshot and
every clip arrives once it is back, exactly once, and is linked to its event; the cameras never waited."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
from minio import Minio

from api.config import parse_config
from api.demo import DEMO_CAMERAS
from api.service import Service
from events.model import EventType
from events.storage.snapshot import unredacted_key
from events.storage.sqlite import SqliteEventStore
from events.storage.store import EventFilters
from ingest.frame import Frame
from pipeline import StepResult
from tests.conftest_s3 import start_seaweedfs, stop_seaweedfs, weed_binary

pytestmark = pytest.mark.slow

OUTAGE_S = 60.0
BUCKET = "khupho-outage"
PLAZA_RULES = [
    {
        "name": "plaza_loitering",
        "type": "loitering",
        "classes": ["person"],
        "min_dwell_s": 2,
        "polygon": [[200, 100], [1000, 100], [1000, 650], [200, 650]],
    }
]


def test_snapshots_survive_a_one_minute_s3_outage(
    tmp_path: Path, footage_dir: Path, models_dir: Path
) -> None:
    weed = weed_binary()
    assert weed is not None, "SeaweedFS 'weed' not found (the test extra installs it)"
    root = tmp_path / "weed"
    s3, proc = start_seaweedfs(weed, root)
    cameras = {
        # Crossing snapshots are off by default (privacy); this test wants a picture of every event.
        "intersection": {"rules": [{**DEMO_CAMERAS["intersection"]["rules"][0], "snapshots": True}]},
        "plaza": {"rules": PLAZA_RULES},
        "street": {"rules": DEMO_CAMERAS["street"]["rules"]},
    }
    config = parse_config(
        {
            "detector": {"model": str(models_dir / "yolov8n-coco.onnx"), "imgsz": 320},
            "storage": {
                "database": {"path": str(tmp_path / "events.db")},
                "objects": {
                    "type": "s3",
                    "endpoint": s3.endpoint,
                    "bucket": BUCKET,
                    "access_key": s3.access_key,
                    "secret_key": s3.secret_key,
                    "retries": 1,
                },
                "spool": {"retry_initial_s": 0.5, "retry_max_s": 3},
            },
            "api": {"port": 0},
            "cameras": {
                name: {
                    "replay": {"path": str(footage_dir / DEMO_CAMERAS[name]["clip"]), "analysis_fps": 3},
                    "events": rules,
                }
                for name, rules in cameras.items()
            },
        }
    )
    service = Service(config)
    analysed: Counter[str] = Counter()

    def on_analysed(*, frame: Frame, result: StepResult) -> None:
        analysed[frame.camera] += 1

    for worker in service.workers.values():
        worker.on_analysed = on_analysed
    service.start()
    try:
        time.sleep(8)
        stop_seaweedfs(proc)
        before = Counter(analysed)
        time.sleep(OUTAGE_S)
        during = Counter({cam: analysed[cam] - before[cam] for cam in analysed})
        spooled = service.uploads.stats()
        proc = start_seaweedfs(weed, root, ports=list(s3.ports))[1]
        assert service.uploads.drain(60), service.uploads.stats()
        service.sink.flush(10)
    finally:
        service.stop()
        stop_seaweedfs(proc)
        proc = start_seaweedfs(weed, root, ports=list(s3.ports))[1]  # to count what arrived
    try:
        # The cameras ran at their pace through the outage, and media went to the spool meanwhile.
        assert all(during[cam] >= 0.9 * 3 * OUTAGE_S for cam in cameras), during
        assert spooled.spooled > 0 and spooled.evicted == 0
        store = SqliteEventStore(tmp_path / "events.db")
        events, _ = store.list_events(EventFilters(), limit=10_000)
        rule_events = [e for e in events if not e.type.startswith("camera_")]
        assert len(rule_events) > 10
        keys = [e.snapshot for e in rule_events]
        assert all(keys), [e.id for e in rule_events if not e.snapshot]  # every event has its picture...
        client = Minio(s3.endpoint, s3.access_key, s3.secret_key, secure=False)
        stored = [o.object_name for o in client.list_objects(BUCKET, prefix="snapshots/", recursive=True)]
        # ...uploaded exactly once, no stray copies; each redacted picture has its original beside it.
        assert sorted(stored) == sorted(keys + [unredacted_key(k) for k in keys])
        assert {e.type for e in rule_events} >= {EventType.LINE_CROSSING, EventType.LOITERING}
        # Clips of the plaza's loitering events (security events; the street's MS-MPEG4 cannot go
        # into MP4, line crossings get none): each one stored once under its event's key.
        loitering = [e for e in rule_events if e.type is EventType.LOITERING]
        assert loitering and all(e.clip for e in loitering), [e.id for e in loitering if not e.clip]
        clip_keys = [e.clip for e in events if e.clip]
        stored_clips = [o.object_name for o in client.list_objects(BUCKET, prefix="clips/", recursive=True)]
        assert sorted(stored_clips) == sorted(clip_keys)
        store.close()
    finally:
        stop_seaweedfs(proc)
