"""The event store contract, run on every backend (the ``store`` fixture: SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.model import Event, EventTransition, EventType, Phase, TrafficCount
from events.storage.store import EventFilters, EventStore, InvalidCursor, decode_cursor, encode_cursor

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def event(i: int = 0, **kw: object) -> Event:
    fields: dict[str, object] = {
        "camera": "cam1",
        "rule": "gate",
        "type": EventType.ZONE_INTRUSION,
        "classes": ["person"],
        "track_ids": [i],
        "start_pts": float(i),
        "start_time": T0 + timedelta(seconds=i),
    }
    fields.update(kw)
    return Event(**fields)  # type: ignore[arg-type]


def tr(phase: Phase, ev: Event) -> EventTransition:
    return EventTransition(phase=phase, event=ev)


def test_is_an_event_store(store: EventStore) -> None:
    assert isinstance(store, EventStore)


def test_round_trip_keeps_every_field_and_timezone(store: EventStore) -> None:
    sast = timezone(timedelta(hours=2))
    ev = event(
        classes=["person", "car"],
        track_ids=[3, 7],
        start_time=datetime(2024, 5, 1, 14, 0, 0, 123456, tzinfo=sast),
        end_time=datetime(2024, 5, 1, 14, 0, 9, tzinfo=sast),
        end_pts=9.5,
        active=False,
        score=0.8,
        data={"direction": "in", "dwell_s": 12.5, "nested": {"zone": ["a", "b"]}},
    )
    store.apply(tr(Phase.END, ev))
    got = store.get(ev.id)
    assert got is not None
    assert got == ev.model_copy(update={"start_time": got.start_time, "end_time": got.end_time})
    assert got.start_time == ev.start_time and got.start_time.tzinfo is not None
    assert got.start_time.utcoffset() == timedelta(0)  # returned in UTC
    assert got.end_time == ev.end_time
    assert store.get("nope") is None


def test_update_and_end_replace_and_replays_are_idempotent(store: EventStore) -> None:
    start = event(classes=["person"])
    update = start.model_copy(update={"classes": ["person", "dog"], "track_ids": [0, 4]})
    end = update.model_copy(update={"active": False, "end_time": T0 + timedelta(seconds=30), "end_pts": 30.0})
    log = [tr(Phase.START, start), tr(Phase.UPDATE, update), tr(Phase.END, end)]
    store.apply_many(log)
    assert store.get(start.id) == end
    # Replaying the whole log, or any part of it, leaves the ended event as it is.
    store.apply_many(log)
    store.apply(log[0])
    store.apply(log[1])
    assert store.get(start.id) == end
    assert store.count_events() == 1
    assert store.list_events(EventFilters(class_name="dog"))[0] == [end]
    # A late start must not reopen nor shrink the class index.
    assert store.list_events(EventFilters(active=True))[0] == []


def test_end_for_unknown_event_inserts_it(store: EventStore) -> None:
    ev = event(active=False, end_time=T0 + timedelta(seconds=5))
    store.apply(tr(Phase.END, ev))
    assert store.get(ev.id) == ev


def test_update_for_unknown_event_inserts_it(store: EventStore) -> None:
    ev = event()
    store.apply(tr(Phase.UPDATE, ev))
    assert store.get(ev.id) == ev


def test_classes_follow_updates(store: EventStore) -> None:
    ev = event(classes=["car"])
    store.apply(tr(Phase.START, ev))
    store.apply(tr(Phase.UPDATE, ev.model_copy(update={"classes": ["person"]})))
    assert store.list_events(EventFilters(class_name="car"))[0] == []
    assert [e.id for e in store.list_events(EventFilters(class_name="person"))[0]] == [ev.id]


def test_snapshot_survives_transitions_and_may_come_first(store: EventStore) -> None:
    ev = event(score=0.3)
    store.set_snapshot(ev.id, "snapshots/cam1/a.jpg", 0.91)  # the writer was faster than the event writer
    store.apply(tr(Phase.START, ev))
    got = store.get(ev.id)
    assert got is not None and got.snapshot == "snapshots/cam1/a.jpg" and got.score == pytest.approx(0.91)
    store.apply(tr(Phase.UPDATE, ev.model_copy(update={"track_ids": [1, 2]})))  # rules send snapshot=None
    got = store.get(ev.id)
    assert got is not None and got.snapshot == "snapshots/cam1/a.jpg" and got.track_ids == [1, 2]
    store.set_snapshot(ev.id, "snapshots/cam1/b.jpg", 0.95)
    got = store.get(ev.id)
    assert got is not None and got.snapshot == "snapshots/cam1/b.jpg" and got.score == pytest.approx(0.95)


def test_naive_datetime_is_refused_and_batch_is_all_or_nothing(store: EventStore) -> None:
    good = event(0)
    bad = event(1, start_time=datetime(2024, 5, 1, 12, 0))
    with pytest.raises(ValueError, match="naive"):
        store.apply_many([tr(Phase.START, good), tr(Phase.START, bad)])
    assert store.count_events() == 0


def test_filters(store: EventStore) -> None:
    evs = [
        event(0, camera="cam1", type=EventType.ZONE_INTRUSION, classes=["person"]),
        event(1, camera="cam2", type=EventType.LINE_CROSSING, classes=["car"]),
        event(2, camera="cam1", type=EventType.LINE_CROSSING, classes=["car", "person"]),
        event(3, camera="cam2", type=EventType.LOITERING, classes=["person"], active=False),
        event(4, camera="cam1", type=EventType.CAMERA_OFFLINE, classes=[]),
    ]
    store.apply_many(tr(Phase.START, e) for e in evs)

    def ids(**kw: object) -> list[str]:
        items, cursor = store.list_events(EventFilters(**kw))  # type: ignore[arg-type]
        assert cursor is None
        assert store.count_events(EventFilters(**kw)) == len(items)  # type: ignore[arg-type]
        return [e.id for e in items]

    assert ids() == [e.id for e in reversed(evs)]
    assert ids(camera="cam1") == [evs[4].id, evs[2].id, evs[0].id]
    assert ids(type=EventType.LINE_CROSSING) == [evs[2].id, evs[1].id]
    assert ids(class_name="person") == [evs[3].id, evs[2].id, evs[0].id]
    assert ids(class_name="car", camera="cam1") == [evs[2].id]
    assert ids(class_name="bicycle") == []
    assert ids(since=T0 + timedelta(seconds=1), until=T0 + timedelta(seconds=3)) == [evs[2].id, evs[1].id]
    assert ids(class_name="person", since=T0 + timedelta(seconds=1)) == [evs[3].id, evs[2].id]
    assert ids(active=False) == [evs[3].id]
    assert ids(active=True, camera="cam2") == [evs[1].id]
    assert ids(camera="nope") == []


def test_cursor_is_opaque_and_checked(store: EventStore) -> None:
    cursor = encode_cursor(T0, "abc")
    assert decode_cursor(cursor)[1] == "abc"
    assert "abc" not in cursor and "=" not in cursor
    for bad in ["", "zzz", "!!!", encode_cursor(T0, "x")[:-3], "WzEsMl0", "eyJhIjoxfQ"]:  # [1,2], {"a":1}
        with pytest.raises(InvalidCursor):
            store.list_events(cursor=bad)
    with pytest.raises(ValueError):
        store.list_events(limit=0)


def drain(store: EventStore, limit: int, **kw: object) -> list[Event]:
    out: list[Event] = []
    cursor = None
    for _ in range(10_000):
        page, cursor = store.list_events(EventFilters(**kw), limit=limit, cursor=cursor)  # type: ignore[arg-type]
        assert len(page) <= limit
        out.extend(page)
        if cursor is None:
            return out
        assert page, "a cursor was returned with an empty page"
    raise AssertionError("pagination did not end")


def order_key(e: Event) -> tuple[datetime, str]:
    return (e.start_time, e.id)


# Few distinct seconds and short ids: many events share a start time, so the id tie-break matters.
event_specs = st.lists(
    st.tuples(
        st.integers(0, 20),
        st.text("abcdef0123", min_size=1, max_size=6),
        st.sampled_from(["person", "car", "dog"]),
    ),
    max_size=60,
    unique_by=lambda t: t[1],
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=event_specs, limit=st.integers(1, 7), by_class=st.booleans())
def test_pagination_returns_every_event_once_in_order(
    new_store: Callable[[], EventStore], specs: list[tuple[int, str, str]], limit: int, by_class: bool
) -> None:
    store = new_store()
    try:
        evs = [event(id=i, start_time=T0 + timedelta(seconds=s), classes=[c]) for s, i, c in specs]
        store.apply_many(tr(Phase.START, e) for e in evs)
        kw = {"class_name": "person"} if by_class else {}
        expected = sorted(
            (e for e in evs if not by_class or "person" in e.classes), key=order_key, reverse=True
        )
        got = drain(store, limit, **kw)
        assert [e.id for e in got] == [e.id for e in expected]
    finally:
        store.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=event_specs, arrivals=st.lists(st.integers(-30, 90), max_size=20), limit=st.integers(1, 5))
def test_pagination_is_stable_while_new_events_arrive(
    new_store: Callable[[], EventStore],
    specs: list[tuple[int, str, str]],
    arrivals: list[int],
    limit: int,
) -> None:
    store = new_store()
    try:
        evs = [event(id=i, start_time=T0 + timedelta(seconds=s)) for s, i, _ in specs]
        store.apply_many(tr(Phase.START, e) for e in evs)
        seen: list[Event] = []
        cursor = None
        pending = list(arrivals)
        while True:
            page, cursor = store.list_events(limit=limit, cursor=cursor)
            seen.extend(page)
            if pending:  # events arrive between page reads, newer or (late-delivered) older
                offset = pending.pop()
                store.apply(
                    tr(Phase.START, event(id=f"new{len(pending)}", start_time=T0 + timedelta(seconds=offset)))
                )
            if cursor is None:
                break
        assert len({e.id for e in seen}) == len(seen), "an event was returned twice"
        assert seen == sorted(seen, key=order_key, reverse=True), "pages out of order"
        original = {e.id for e in evs}
        assert [e.id for e in seen if e.id in original] == [
            e.id for e in sorted(evs, key=order_key, reverse=True)
        ]
    finally:
        store.close()


def test_traffic_adds_and_buckets(store: EventStore) -> None:
    def tc(
        minute: datetime, n: int, line: str = "gate", cls: str = "car", direction: str = "in"
    ) -> TrafficCount:
        return TrafficCount(
            camera="cam1", line=line, class_name=cls, direction=direction, minute=minute, count=n
        )

    m = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    store.add_traffic([tc(m, 2), tc(m + timedelta(minutes=1), 3), tc(m + timedelta(minutes=70), 4)])
    store.add_traffic([tc(m, 5), tc(m, 1, direction="out"), tc(m, 7, line="road")])
    store.add_traffic([tc(m + timedelta(seconds=30), 1)])  # floored onto its minute
    rows = store.traffic("cam1", "gate", bucket="minute")
    assert [(r.time, r.direction, r.count) for r in rows] == [
        (m, "in", 8),
        (m, "out", 1),
        (m + timedelta(minutes=1), "in", 3),
        (m + timedelta(minutes=70), "in", 4),
    ]
    hours = store.traffic("cam1", "gate", bucket="hour")
    assert [(r.time, r.direction, r.count) for r in hours] == [
        (m, "in", 11),
        (m, "out", 1),
        (m + timedelta(hours=1), "in", 4),
    ]
    assert sum(r.count for r in store.traffic("cam1", bucket="day")) == 8 + 1 + 3 + 4 + 7
    assert (
        store.traffic("cam1", "gate", since=m + timedelta(minutes=1), until=m + timedelta(minutes=70))
        == rows[2:3]
    )
    assert store.traffic("cam2") == []
    assert {r.line for r in store.traffic()} == {"gate", "road"}


def test_traffic_hours_in_a_half_hour_zone(store: EventStore) -> None:
    kolkata = ZoneInfo("Asia/Kolkata")  # UTC+05:30: a local hour spans two UTC hours
    minute = datetime(2024, 5, 1, 10, 0, tzinfo=kolkata)
    counts = [
        TrafficCount(
            camera="c",
            line="l",
            class_name="person",
            direction="in",
            minute=minute + timedelta(minutes=k),
            count=1,
        )
        for k in (0, 29, 30, 59, 60)
    ]
    store.add_traffic(counts)
    rows = store.traffic("c", bucket="hour", tz=kolkata)
    assert [(r.time, r.count) for r in rows] == [(minute, 4), (minute + timedelta(hours=1), 1)]
    assert rows[0].time.utcoffset() == timedelta(hours=5, minutes=30)
    utc_rows = store.traffic("c", bucket="hour")
    assert [r.count for r in utc_rows] == [2, 3]  # 04:30 and 04:59 UTC, then 05:00, 05:29, 05:30


def test_traffic_days_across_dst(store: EventStore) -> None:
    berlin = ZoneInfo("Europe/Berlin")  # 2024-03-31: clocks go from 02:00 to 03:00
    day = datetime(2024, 3, 31, tzinfo=berlin)
    counts = [
        TrafficCount(
            camera="c",
            line="l",
            class_name="car",
            direction="in",
            minute=day.astimezone(UTC) + timedelta(hours=h),
            count=1,
        )
        for h in (0, 1, 3, 23)  # 23 real hours after midnight is already the next day (a 23-hour day)
    ]
    store.add_traffic(counts)
    rows = store.traffic("c", bucket="day", tz=berlin)
    assert [(r.time.date().isoformat(), r.count) for r in rows] == [("2024-03-31", 3), ("2024-04-01", 1)]


def test_concurrent_writers_and_readers(store: EventStore) -> None:
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            for i in range(50):
                store.apply(tr(Phase.START, event(i, id=f"w{k}-{i}", camera=f"cam{k}")))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(50):
                store.list_events(limit=10)
                store.count_events(EventFilters(camera="cam1"))
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)] + [
        threading.Thread(target=reader) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.count_events() == 200
    assert len(drain(store, 37)) == 200
