"""UploadSpool against local object storage made to fail: restart, cap, eviction order, link failures."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from events.storage.objects import LocalObjectStore
from events.storage.spool import UploadSpool
from events.storage.store import StorageError

FAST = {"max_bytes": 1 << 30, "retry_initial_s": 0.05, "retry_max_s": 1.0}


class Links:
    """Records links; fails while ``down`` (an event store that is locked, say)."""

    def __init__(self) -> None:
        self.linked: list[str] = []
        self.down = False

    def __call__(self, *, key: str, link: Mapping[str, Any]) -> None:
        if self.down:
            raise StorageError("event store locked")
        self.linked.append(key)


def _blocked(objects: LocalObjectStore) -> Path:
    """Make every upload under snapshots/ fail (a file where the folder should be)."""
    block = objects.root / "snapshots"
    block.parent.mkdir(parents=True, exist_ok=True)
    block.write_text("in the way")
    return block


def _put(spool: UploadSpool, key: str, size: int = 10, *, evidence: bool = True) -> bool:
    return spool.put(
        key=key,
        data=b"x" * size,
        content_type="image/jpeg",
        metadata={},
        link={"kind": "snapshot", "event_id": key, "score": 0.5},
        evidence=evidence,
    )


def test_spooled_media_survive_a_restart_and_land_once(tmp_path: Path) -> None:
    objects, links = LocalObjectStore(tmp_path / "media"), Links()
    block = _blocked(objects)
    first = UploadSpool(objects, tmp_path / "spool", on_uploaded=links, **FAST)
    assert not _put(first, "snapshots/a.jpg") and not _put(first, "snapshots/b.jpg")
    assert first.stats().pending == 2 and links.linked == []
    # The process stops (nothing started, nothing drained): the next one finds the spool.
    block.unlink()
    second = UploadSpool(objects, tmp_path / "spool", on_uploaded=links, **FAST).start()
    assert second.drain(10)
    second.close(5)
    assert sorted(links.linked) == ["snapshots/a.jpg", "snapshots/b.jpg"]
    assert objects.exists("snapshots/a.jpg") and not list((tmp_path / "spool").iterdir())


def test_a_failed_link_keeps_the_entry_and_the_retry_links_it(tmp_path: Path) -> None:
    objects, links = LocalObjectStore(tmp_path / "media"), Links()
    links.down = True
    spool = UploadSpool(objects, tmp_path / "spool", on_uploaded=links, **FAST)
    assert not _put(spool, "snapshots/c.jpg")  # uploaded, but not linked: kept
    spool.start()
    links.down = False
    assert spool.drain(10)
    spool.close(5)
    assert links.linked == ["snapshots/c.jpg"]


def test_the_cap_evicts_the_oldest_non_evidence_first(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    objects, links = LocalObjectStore(tmp_path / "media"), Links()
    _blocked(objects)
    spool = UploadSpool(objects, tmp_path / "spool", on_uploaded=links, **{**FAST, "max_bytes": 3000})
    _put(spool, "snapshots/evidence-old.jpg", 1000)
    _put(spool, "snapshots/crossing-old.jpg", 1000, evidence=False)
    _put(spool, "snapshots/crossing-new.jpg", 1000, evidence=False)
    _put(spool, "snapshots/evidence-new.jpg", 1000)  # over the cap: one must go
    stats = spool.stats()
    assert stats.evicted == 1 and stats.pending == 3 and stats.pending_bytes == 3000
    assert "snapshots/crossing-old.jpg" in caplog.text and "upload spool" in caplog.text
    names = {p.name for p in (tmp_path / "spool").glob("*.json")}
    assert len(names) == 3


def test_an_entry_that_keeps_failing_does_not_hold_up_the_others(tmp_path: Path) -> None:
    objects, links = LocalObjectStore(tmp_path / "media"), Links()
    stuck = objects.root / "stuck"
    stuck.parent.mkdir(parents=True, exist_ok=True)
    stuck.write_text("a file where a folder should be")  # uploads under stuck/ keep failing
    block = _blocked(objects)
    spool = UploadSpool(objects, tmp_path / "spool", on_uploaded=links, **FAST)
    _put(spool, "stuck/first.jpg")  # oldest, and never going to succeed
    _put(spool, "snapshots/later.jpg")
    block.unlink()
    spool.start()
    deadline = time.monotonic() + 10
    while "snapshots/later.jpg" not in links.linked and time.monotonic() < deadline:
        time.sleep(0.05)
    assert links.linked == ["snapshots/later.jpg"] and spool.stats().pending == 1
    spool.close(1)
