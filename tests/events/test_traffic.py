from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from events.traffic import Crossing, TrafficAggregator, minute_floor

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
T0 = datetime(2024, 6, 1, 23, 58, tzinfo=TZ).timestamp()


def _crossing(
    t: float, cls: str = "car", direction: str = "in", line: str = "gate", camera: str = "cam"
) -> Crossing:
    return Crossing(camera=camera, line=line, class_name=cls, direction=direction, wall_time=t)


def test_counts_per_key_and_minute() -> None:
    agg = TrafficAggregator(TZ)
    for t, cls, d in [
        (T0 + 1, "car", "in"),
        (T0 + 30, "car", "in"),
        (T0 + 59.999, "car", "out"),
        (T0 + 10, "person", "in"),
        (T0 + 60, "car", "in"),  # next minute
    ]:
        agg.add(_crossing(t, cls, d))
    agg.add(_crossing(T0 + 5, line="side"))
    rows = agg.flush_all()
    assert [(r.minute.minute, r.line, r.class_name, r.direction, r.count) for r in rows] == [
        (58, "gate", "car", "in", 2),
        (58, "gate", "car", "out", 1),
        (58, "gate", "person", "in", 1),
        (58, "side", "car", "in", 1),
        (59, "gate", "car", "in", 1),
    ]
    assert rows[0].minute == datetime(2024, 6, 1, 23, 58, tzinfo=TZ)
    assert rows[0].minute.utcoffset().total_seconds() == 7 * 3600
    assert agg.flush_all() == []


def test_rows_are_increments() -> None:
    agg = TrafficAggregator(TZ)
    agg.add(_crossing(T0 + 1))
    first = agg.flush_all()
    agg.add(_crossing(T0 + 2))  # same minute after a flush: a second row for the same key
    second = agg.flush_all()
    assert [r.count for r in first + second] == [1, 1]
    assert first[0].minute == second[0].minute


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 600), st.sampled_from(["car", "bus"]), st.sampled_from(["in", "out"])))
)
def test_flushed_rows_add_up_to_the_crossings(items: list[tuple[float, str, str]]) -> None:
    agg = TrafficAggregator(TZ)
    for t, cls, d in sorted(items):
        agg.add(_crossing(T0 + t, cls, d))
    rows = agg.flush_all()
    assert sum(r.count for r in rows) == len(items)
    for r in rows:
        assert r.minute.second == 0 and r.minute.microsecond == 0
        expected = sum(
            1
            for t, c, d in items
            if (c, d) == (r.class_name, r.direction) and minute_floor(T0 + t) == r.minute.timestamp()
        )
        assert r.count == expected
