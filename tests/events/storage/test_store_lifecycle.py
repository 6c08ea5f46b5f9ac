"""The store's lifecycle contract: open events after a crash, clips, evidence locks, retention queries.
Written against the EventStore protocol; the ``store`` fixture runs it on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from events.model import Event, EventTransition, EventType, Phase, TrafficCount
from events.storage.store import EventFilters, EventStore

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _event(
    i: int, *, ended: bool = True, type_: EventType = EventType.ZONE_INTRUSION, camera: str = "cam1"
) -> Event:
    start = T0 + timedelta(minutes=i)
    return Event(
        camera=camera,
        rule="r",
        type=type_,
        classes=["person"],
        track_ids=[i],
        start_pts=float(i),
        start_time=start,
        end_pts=float(i) + 5 if ended else None,
        end_time=start + timedelta(seconds=5) if ended else None,
        active=not ended,
    )


def _store_all(store: EventStore, events: list[Event]) -> None:
    store.apply_many(
        [EventTransition(phase=Phase.END if not e.active else Phase.START, event=e) for e in events]
    )


def test_open_events_are_the_active_ones_oldest_first(store: EventStore) -> None:
    events = [_event(2, ended=False), _event(0), _event(1, ended=False)]
    _store_all(store, events)
    assert [e.id for e in store.open_events()] == [events[2].id, events[0].id]


def test_open_events_of_one_camera(store: EventStore) -> None:
    events = [_event(0, ended=False), _event(1, ended=False, camera="cam9")]
    _store_all(store, events)
    assert [e.id for e in store.open_events("cam9")] == [events[1].id]
    assert store.open_events("nowhere") == []


def test_clip_and_lock_come_back_with_the_event(store: EventStore) -> None:
    ev = _event(0)
    store.set_clip(ev.id, "clips/cam1/x.mp4")  # before the row exists: kept
    _store_all(store, [ev])
    assert store.set_locked(ev.id, True) is True
    got = store.get(ev.id)
    assert got is not None and got.clip == "clips/cam1/x.mp4" and got.locked
    assert store.set_locked("no-such-event", True) is False
    assert store.set_locked(ev.id, False) and not store.get(ev.id).locked  # type: ignore[union-attr]


def test_expired_skips_open_locked_and_young_events(store: EventStore) -> None:
    old, locked, young, still_open = _event(0), _event(1), _event(30), _event(2, ended=False)
    crossing = _event(3, type_=EventType.LINE_CROSSING)
    _store_all(store, [old, locked, young, still_open, crossing])
    store.set_locked(locked.id, True)
    cutoff = T0 + timedelta(minutes=10)
    assert [e.id for e in store.expired(cutoff)] == [old.id, crossing.id]
    assert [e.id for e in store.expired(cutoff, types=[EventType.LINE_CROSSING])] == [crossing.id]
    assert store.expired(cutoff, camera="cam2") == []
    assert [e.id for e in store.expired(cutoff, limit=1)] == [old.id]


def test_delete_events_never_deletes_a_locked_one(store: EventStore) -> None:
    a, b = _event(0), _event(1)
    _store_all(store, [a, b])
    store.set_snapshot(a.id, "snap/a.jpg", 0.9)
    store.set_locked(b.id, True)
    store.set_snapshot(b.id, "snap/b.jpg", 0.8)
    store.set_clip(b.id, "clips/b.mp4")
    assert store.delete_events([a.id, b.id]) == 1
    assert store.get(a.id) is None
    kept = store.get(b.id)
    assert kept is not None and kept.snapshot == "snap/b.jpg" and kept.clip == "clips/b.mp4"
    assert [e.id for e in store.list_events(EventFilters(class_name="person"))[0]] == [b.id]
    store.set_snapshot(a.id, "snap/a.jpg", 0.9)  # a late snapshot row for a deleted event is harmless
    assert store.count_events() == 1


def test_media_of_the_oldest_unlocked_events_first_then_cleared(store: EventStore) -> None:
    a, b, c = _event(0), _event(1), _event(2)
    _store_all(store, [a, b, c])
    store.set_snapshot(a.id, "snap/a.jpg", 0.9)
    store.set_clip(b.id, "clips/b.mp4")
    store.set_snapshot(c.id, "snap/c.jpg", 0.9)
    store.set_locked(a.id, True)
    assert [e.id for e in store.oldest_with_media(10)] == [b.id, c.id]
    store.clear_media(b.id)
    after = store.get(b.id)
    assert after is not None and after.clip is None and after.snapshot is None
    assert [e.id for e in store.oldest_with_media(10)] == [c.id]


def test_delete_traffic_before_a_minute(store: EventStore) -> None:
    rows = [
        TrafficCount(
            camera=cam, line="l", class_name="car", direction="in", minute=T0 + timedelta(minutes=m), count=1
        )
        for cam in ("cam1", "cam2")
        for m in range(3)
    ]
    store.add_traffic(rows)
    assert store.delete_traffic(T0 + timedelta(minutes=2), camera="cam1") == 2
    assert store.delete_traffic(T0 + timedelta(minutes=1)) == 1
    assert sum(r.count for r in store.traffic()) == 3


def test_a_batch_replayed_adds_its_counts_once(store: EventStore) -> None:
    ev = _event(0, type_=EventType.LINE_CROSSING)
    count = TrafficCount(camera="cam1", line="l", class_name="car", direction="in", minute=T0, count=1)
    start = EventTransition(phase=Phase.END, event=ev)
    assert store.apply_batch([start], [count], batch_id="run1:1") is True
    assert store.apply_batch([start], [count], batch_id="run1:1") is False  # the journal's replay
    assert store.apply_batch([], [count], batch_id="run1:2") is True
    assert sum(r.count for r in store.traffic()) == 2 and store.count_events() == 1
    assert store.forget_batches(datetime.now(UTC) + timedelta(seconds=1)) == 2
