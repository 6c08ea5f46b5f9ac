"""Retention against a real SQLite store and local object storage: ages per type and camera, evidence
locks, media and rows together, traffic counts, and the disk watermark on a small real filesystem."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from events.model import Event, EventTransition, EventType, Phase, TrafficCount
from events.storage.objects import LocalObjectStore
from events.storage.retention import RetentionConfig, RetentionJob
from events.storage.snapshot import unredacted_key
from events.storage.sqlite import SqliteEventStore

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _ended(days_ago: float, *, camera: str = "cam1", type_: EventType = EventType.ZONE_INTRUSION) -> Event:
    end = NOW - timedelta(days=days_ago)
    return Event(
        camera=camera,
        rule="r",
        type=type_,
        start_pts=0.0,
        start_time=end - timedelta(seconds=30),
        end_pts=30.0,
        end_time=end,
        active=False,
    )


def _add(store: SqliteEventStore, objects: LocalObjectStore, ev: Event, size: int = 1000) -> str:
    store.apply(EventTransition(phase=Phase.END, event=ev))
    key = f"snapshots/{ev.camera}/{ev.id}.jpg"
    objects.put(key, os.urandom(size), "image/jpeg", {})
    objects.put(unredacted_key(key), b"original", "image/jpeg", {})
    store.set_snapshot(ev.id, key, 0.9)
    return key


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[SqliteEventStore, LocalObjectStore]]:
    store = SqliteEventStore(tmp_path / "events.db")
    yield store, LocalObjectStore(tmp_path / "media")
    store.close()


def test_ages_per_type_and_camera_locks_and_traffic(parts: tuple[SqliteEventStore, LocalObjectStore]) -> None:
    store, objects = parts
    config = RetentionConfig(
        events_days=30,
        by_type={EventType.LINE_CROSSING: 7},
        cameras={"gate": {"events_days": 90}},
        traffic_days=365,
    )
    old = _ended(40)
    young = _ended(10)
    crossing_old = _ended(8, type_=EventType.LINE_CROSSING)
    crossing_young = _ended(6, type_=EventType.LINE_CROSSING)
    gate_kept = _ended(40, camera="gate")  # its camera keeps events 90 days
    gate_old = _ended(100, camera="gate")
    locked = _ended(400)
    gone_camera = _ended(40, camera="removed")  # no longer configured: the default age
    keys = {
        ev.id: _add(store, objects, ev)
        for ev in (old, young, crossing_old, crossing_young, gate_kept, gate_old, locked, gone_camera)
    }
    store.set_locked(locked.id, True)
    store.add_traffic(
        [
            TrafficCount(
                camera="cam1",
                line="l",
                class_name="car",
                direction="in",
                minute=NOW - timedelta(days=d),
                count=1,
            )
            for d in (10, 400)
        ]
    )
    job = RetentionJob(store, objects, config, cameras=["cam1", "gate"])
    report = job.run_once(NOW)
    gone = {old.id, crossing_old.id, gate_old.id, gone_camera.id}
    assert report.events == 4 and report.media == 4 and report.traffic_rows == 1
    assert report.by_type == {"zone_intrusion": 3, "line_crossing": 1}
    for ev_id, key in keys.items():
        assert (store.get(ev_id) is None) == (ev_id in gone), ev_id
        assert objects.exists(key) == (ev_id not in gone), key
        assert objects.exists(unredacted_key(key)) == (ev_id not in gone), key  # the original goes too
    assert sum(r.count for r in store.traffic()) == 1
    assert job.run_once(NOW).events == 0  # nothing left to do: idempotent
    assert job.totals.events == 4


def test_an_object_that_cannot_be_deleted_keeps_its_event_for_the_next_run(
    parts: tuple[SqliteEventStore, LocalObjectStore],
) -> None:
    store, objects = parts
    ev = _ended(40)
    key = _add(store, objects, ev)
    path = objects.root / key
    path.unlink()
    path.mkdir()  # deleting it now fails (a directory where the file was)
    (path / "x").write_text("x")
    job = RetentionJob(store, objects, RetentionConfig())
    report = job.run_once(NOW)
    assert report.events == 0 and report.kept_for_retry == 1 and store.get(ev.id) is not None
    shutil.rmtree(path)
    assert job.run_once(NOW).events == 1 and store.get(ev.id) is None


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MB tmpfs made for the test (root can mount; CI runs as root)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True)
    assert done.returncode == 0, f"cannot mount a tmpfs for the watermark test: {done.stderr.decode()}"
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_the_disk_watermark_deletes_the_oldest_unlocked_media_first(tmp_path: Path, small_disk: Path) -> None:
    store = SqliteEventStore(tmp_path / "events.db")
    objects = LocalObjectStore(small_disk)
    events = [_ended(20 - i * 0.1) for i in range(60)]  # oldest first, all younger than 30 days
    keys = [_add(store, objects, ev, size=100_000) for ev in events]
    store.set_locked(events[0].id, True)  # evidence: kept whatever the disk says
    usage = shutil.disk_usage(small_disk)
    assert usage.free / usage.total < 0.3
    config = RetentionConfig.model_validate({"disk": {"min_free_pct": 30, "target_free_pct": 50}})
    report = RetentionJob(store, objects, config, media_dir=small_disk).run_once(NOW)
    usage = shutil.disk_usage(small_disk)
    assert usage.free / usage.total >= 0.5
    assert report.events == 0 and report.watermark_media > 10
    kept = [objects.exists(k) for k in keys]
    assert kept[0]  # locked
    first_kept = kept.index(True, 1)
    assert not any(kept[1:first_kept]) and all(kept[first_kept:])  # the oldest went, the newest stay
    for ev, present in zip(events, kept, strict=True):
        got = store.get(ev.id)
        assert got is not None and (got.snapshot is not None) == present  # rows stay, media links go
    store.close()
