"""Camera leases on a real PostgreSQL: a writer whose camera moved on cannot add events, and the
controller's recovery ends what an earlier writer left open."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from api.metrics import KhuphoMetrics
from cluster.leases import FencedOff, FencedStore, Leases, batch_prefix, epoch_of_batch
from events.model import Event, EventTransition, EventType, Phase
from events.storage.bus import EventBus
from events.storage.postgres import PostgresEventStore
from pipeline.sink import EventSink

pytestmark = pytest.mark.slow

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def _start(camera: str, i: int) -> EventTransition:
    ev = Event(
        camera=camera,
        rule="gate",
        type=EventType.ZONE_INTRUSION,
        classes=["person"],
        track_ids=[i],
        start_pts=float(i),
        start_time=T0 + timedelta(seconds=i),
    )
    return EventTransition(phase=Phase.START, event=ev)


def test_batch_ids_carry_the_epoch() -> None:
    assert epoch_of_batch(f"{batch_prefix('cam-1.a', 12)}-ab12cd34:7") == 12
    assert epoch_of_batch("ab12cd34:7") is None  # a single-process batch
    assert epoch_of_batch("cam@x-1:2") is None


def test_a_stale_writer_is_refused_and_the_current_one_writes(store: PostgresEventStore) -> None:
    leases = Leases(store)
    first = leases.take("gate", "node-a")
    old = FencedStore(store, "gate", first)
    assert old.apply_batch([_start("gate", 1)], (), batch_id=f"{batch_prefix('gate', first)}-r:1")
    second = leases.take("gate", "node-b")  # the camera moved: the old writer is fenced off
    assert second == first + 1
    with pytest.raises(FencedOff, match="epoch"):
        old.apply_batch([_start("gate", 2)], (), batch_id=f"{batch_prefix('gate', first)}-r:2")
    new = FencedStore(store, "gate", second)
    assert new.apply_batch([_start("gate", 3)], (), batch_id=f"{batch_prefix('gate', second)}-s:1")
    # A journal left by the old writer, replayed by the new one, is checked against its own epoch.
    with pytest.raises(FencedOff):
        new.apply_batch([_start("gate", 4)], (), batch_id=f"{batch_prefix('gate', first)}-r:3")
    stored = {e.track_ids[0] for e in store.list_events()[0]}
    assert stored == {1, 3}
    assert leases.all()["gate"].node == "node-b"


def test_a_fenced_sink_sets_batches_aside_and_goes_on(store: PostgresEventStore, tmp_path: Path) -> None:
    leases = Leases(store)
    epoch = leases.take("gate", "node-a")
    sink = EventSink(
        FencedStore(store, "gate", epoch),  # type: ignore[arg-type]
        EventBus(),
        None,
        observer=KhuphoMetrics(),
        journal_dir=tmp_path,
        batch_prefix=batch_prefix("gate", epoch),
    ).start()
    sink.publish([_start("gate", 1)])
    assert sink.flush(10)
    leases.take("gate", "node-b")
    sink.publish([_start("gate", 2)])
    assert sink.flush(10)
    sink.close()
    assert [e.track_ids for e in store.list_events()[0]] == [[1]]
    rejected = (tmp_path / "rejected.jsonl").read_text().splitlines()
    assert len(rejected) == 1 and '"track_ids":[2]' in rejected[0].replace(" ", "")


def test_many_leases_in_one_statement(store: PostgresEventStore) -> None:
    leases = Leases(store)
    assert leases.take("a", "n1") == 1
    epochs = leases.take_many({"a": "n2", "b": "n2", "c": "n3"})
    assert epochs == {"a": 2, "b": 1, "c": 1}
    assert {c: (lease.epoch, lease.node) for c, lease in leases.all().items()} == {
        "a": (2, "n2"),
        "b": (1, "n2"),
        "c": (1, "n3"),
    }
    assert leases.take_many({}) == {}
