"""SQLite-only behaviour of the event store: the file itself (WAL, reopening, migrating old files).
The contract every backend shares is in test_store_contract.py and test_store_lifecycle.py."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from events.model import Event, EventTransition, EventType, Phase
from events.storage.migrations import latest
from events.storage.sqlite import SqliteEventStore
from events.storage.store import StorageError

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def event() -> Event:
    return Event(
        camera="cam1",
        rule="gate",
        type=EventType.ZONE_INTRUSION,
        start_pts=0.0,
        start_time=T0,
        classes=["person"],
    )


def tr(phase: Phase, ev: Event) -> EventTransition:
    return EventTransition(phase=phase, event=ev)


def test_wal_and_persistence(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "events.db"
    s = SqliteEventStore(path)
    ev = event()
    s.apply(tr(Phase.START, ev))
    s.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    s = SqliteEventStore(path)
    assert s.get(ev.id) == ev
    s.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    SqliteEventStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO schema_migrations VALUES (99, 'from_the_future', 0)")
    with pytest.raises(StorageError, match="schema version 99"):
        SqliteEventStore(path)


def test_a_schema_1_database_is_upgraded_in_place(tmp_path: Path) -> None:
    """A file written before migrations were numbered (PRAGMA user_version 1) keeps its events."""
    path = tmp_path / "old.db"
    store = SqliteEventStore(path)
    ev = event()
    store.apply(tr(Phase.START, ev))
    store.close()
    with sqlite3.connect(path) as db:  # back to what khupho 0.1 left: no numbered migrations, no v2 tables
        db.execute("DROP TABLE schema_migrations")
        db.execute("DROP TABLE clips")
        db.execute("DROP TABLE locks")
        db.execute("DROP TABLE applied_batches")
        db.execute("DROP INDEX events_by_end")
        db.execute("PRAGMA user_version=1")
    upgraded = SqliteEventStore(path)
    assert upgraded.schema_version == latest("sqlite") >= 2
    assert upgraded.get(ev.id) is not None
    upgraded.set_clip(ev.id, "clips/x.mp4")
    upgraded.close()
