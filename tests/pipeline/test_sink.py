"""EventSink against a real SQLite store: camera threads never wait, order is kept, nothing is lost or
counted twice across a locked database, a full queue, a stop with the store down and a restart."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from api.metrics import KhuphoMetrics
from events.model import Event, EventTransition, EventType, Phase, TrafficCount
from events.storage.bus import EventBus
from events.storage.sqlite import SqliteEventStore
from pipeline.sink import EventSink

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _crossing(i: int) -> tuple[list[EventTransition], list[TrafficCount]]:
    ev = Event(
        camera="cam1",
        rule="line",
        type=EventType.LINE_CROSSING,
        classes=["car"],
        track_ids=[i],
        start_pts=float(i),
        start_time=T0 + timedelta(seconds=i),
        end_pts=float(i),
        end_time=T0 + timedelta(seconds=i),
        active=False,
    )
    count = TrafficCount(camera="cam1", line="line", class_name="car", direction="in", minute=T0, count=1)
    return [EventTransition(phase=Phase.END, event=ev)], [count]


def _sink(tmp_path: Path, store: SqliteEventStore, bus: EventBus | None = None, **kw: int) -> EventSink:
    return EventSink(
        store, bus or EventBus(), None, observer=KhuphoMetrics(), journal_dir=tmp_path / "state", **kw
    )


def _stored(store: SqliteEventStore) -> tuple[int, int]:
    return store.count_events(), sum(r.count for r in store.traffic())


def test_a_locked_database_never_blocks_publish_and_everything_is_stored_after(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "events.db", timeout=0.2)
    bus = EventBus()
    live = bus.subscribe(name="feed", maxsize=1000)
    sink = _sink(tmp_path, store, bus, max_queue=16).start()
    locker = sqlite3.connect(tmp_path / "events.db", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # a backup, an sqlite3 shell...
    slowest = 0.0
    for i in range(100):  # more than the queue holds: the rest goes to the journal
        transitions, counts = _crossing(i)
        t0 = time.perf_counter()
        sink.publish(transitions, traffic=counts)
        slowest = max(slowest, time.perf_counter() - t0)
    assert slowest < 0.05, slowest  # a camera thread hands over and goes on
    assert sink.journal_bytes > 0 and sink.backlog == 100
    assert live.get_nowait() is None  # nothing on the live feed before it is stored
    time.sleep(0.5)
    assert sink.oldest_unwritten_age() >= 0.5
    locker.execute("ROLLBACK")
    locker.close()
    assert sink.flush(timeout=20)
    assert _stored(store) == (100, 100)
    seen = [live.get_nowait() for _ in range(100)]
    assert [m.transition.event.track_ids[0] for m in seen if m is not None] == list(range(100))  # in order
    assert sink.journal_bytes == 0 and sink.oldest_unwritten_age() == 0.0
    assert sink.close(timeout=5)
    store.close()


def test_what_a_stop_cannot_store_is_stored_at_the_next_start_exactly_once(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "events.db", timeout=0.1)
    sink = _sink(tmp_path, store, max_queue=4).start()
    locker = sqlite3.connect(tmp_path / "events.db", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    for i in range(10):
        sink.publish(*_crossing(i)[:1], traffic=_crossing(i)[1])
    assert sink.close(timeout=0.5) is False  # the store stayed locked: kept in the journal
    locker.execute("ROLLBACK")
    locker.close()
    assert _stored(store) == (0, 0)
    store.close()

    reopened = SqliteEventStore(tmp_path / "events.db")
    again = _sink(tmp_path, reopened)
    assert again.replay_journal() == 10
    assert _stored(reopened) == (10, 10)
    # A journal replayed twice (the process died before the offset moved) counts nothing twice.
    again.close()
    third = _sink(tmp_path, reopened)
    assert third.replay_journal() == 0 and _stored(reopened) == (10, 10)
    third.close()
    reopened.close()


def test_a_killed_process_leaves_the_journal_for_the_next_start(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "events.db", timeout=0.1)
    sink = _sink(tmp_path, store, max_queue=1).start()
    locker = sqlite3.connect(tmp_path / "events.db", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    for i in range(5):
        sink.publish(*_crossing(i)[:1], traffic=_crossing(i)[1])
    # No close(): the process is gone. A torn line from an append cut short must not break the replay.
    with (tmp_path / "state" / "journal.jsonl").open("ab") as f:
        f.write(b'{"id": "torn')
    locker.execute("ROLLBACK")
    locker.close()
    fresh = SqliteEventStore(tmp_path / "events.db")
    replayed = _sink(tmp_path, fresh).replay_journal()
    # The queue held one or two batches in memory (lost with the process); the journal the rest.
    assert replayed >= 3
    assert (
        _stored(fresh)[0] == _stored(fresh)[1]
    )  # a crossing and its count are stored together or not at all
    fresh.close()


def test_publish_from_many_threads_keeps_each_cameras_order(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "events.db")
    bus = EventBus()
    live = bus.subscribe(name="feed", maxsize=10_000)
    sink = _sink(tmp_path, store, bus, max_queue=8).start()

    def camera(offset: int) -> None:
        for i in range(200):
            sink.publish(*_crossing(offset + i)[:1], traffic=_crossing(offset + i)[1])

    threads = [threading.Thread(target=camera, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sink.flush(timeout=30)
    assert _stored(store) == (800, 800)
    got = [m.transition.event.track_ids[0] for m in iter(live.get_nowait, None)]
    for k in range(4):
        mine = [i for i in got if k * 1000 <= i < (k + 1) * 1000]
        assert mine == sorted(mine) and len(mine) == 200
    sink.close()
    store.close()


@pytest.mark.parametrize("bad", [b"not json\n", b'{"id": 1}\n'])
def test_an_unreadable_journal_line_is_skipped_and_logged(
    tmp_path: Path, bad: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "journal.jsonl").write_bytes(bad)
    store = SqliteEventStore(tmp_path / "events.db")
    sink = _sink(tmp_path, store)
    assert sink.replay_journal() == 0
    assert "unreadable batch" in caplog.text
    assert sink.backlog == 0
    sink.close()
    store.close()


def test_a_batch_the_store_refuses_is_set_aside_and_the_rest_goes_on(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "events.db")
    sink = _sink(tmp_path, store).start()
    bad, _ = _crossing(0)
    naive = bad[0].event.model_copy(update={"start_time": datetime(2024, 5, 1, 12, 0)})  # no time zone
    sink.publish([EventTransition(phase=Phase.END, event=naive)])
    sink.publish(*_crossing(1)[:1], traffic=_crossing(1)[1])
    assert sink.flush(timeout=10)
    assert _stored(store) == (1, 1)
    assert naive.id in (tmp_path / "state" / "rejected.jsonl").read_text()
    sink.close()
    store.close()


def test_a_torn_append_is_cut_so_the_next_batch_is_not_glued_to_it(tmp_path: Path) -> None:
    from pipeline.journal import Batch, Journal

    journal = Journal(tmp_path)
    journal.append(Batch("run:1", 1.0))
    with journal.path.open("ab") as f:
        f.write(b'{"id": "run:2", "crea')  # the process died here
    journal.close()
    again = Journal(tmp_path)
    assert again.pending == 1
    again.append(Batch("run:3", 3.0))
    batches, _, lines = again.read(10)
    assert [b.id for b in batches] == ["run:1", "run:3"] and lines == 2
