"""Review items: grouping of events, the state machine, comments, seen, metrics, the live feed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from api.review.store import ReviewError, ReviewMetrics, ReviewStore
from events.model import EventTransition, EventType, Phase
from tests.api.security_backends import SecurityBackend
from tests.api.support import T0, Parts, make_event, start


def end(i: int, seconds: float, **kw: object) -> EventTransition:
    ev = make_event(i, **kw)
    return EventTransition(
        phase=Phase.END,
        event=ev.model_copy(update={"active": False, "end_time": ev.start_time + timedelta(seconds=seconds)}),
    )


@pytest.fixture
def review(security_backend: SecurityBackend) -> ReviewStore:
    return ReviewStore(security_backend.new(), merge_gap_s=30, metrics=ReviewMetrics(CollectorRegistry()))


def test_close_events_of_one_rule_are_one_item(review: ReviewStore) -> None:
    # A busy plaza: 40 loitering events a few seconds apart, each of another person.
    for i in range(40):
        review.ingest(start(make_event(i * 3, rule="plaza", type=EventType.LOITERING, track_ids=[i])))
    items, _ = review.list(None)
    assert len(items) == 1 and items[0].events == 40 and items[0].tracks == 40 and items[0].active
    assert items[0].severity == "alert" and items[0].state == "new"


def test_a_pause_longer_than_the_gap_or_another_rule_starts_a_new_item(review: ReviewStore) -> None:
    a = review.ingest(start(make_event(0, rule="gate")))
    review.ingest(end(0, 10, rule="gate"))  # ends at 10 s
    assert review.ingest(start(make_event(35, rule="gate"))) == a  # 25 s after the end: same item
    b = review.ingest(start(make_event(100, rule="gate")))  # 65 s later: a new one
    c = review.ingest(start(make_event(101, rule="yard")))
    d = review.ingest(start(make_event(102, rule="gate", camera="cam2")))
    assert len({a, b, c, d}) == 4
    assert review.get(a).events == 2 and review.get(a).last_time == T0 + timedelta(seconds=35)  # type: ignore[union-attr]
    # Replaying a transition changes nothing.
    review.ingest(start(make_event(35, rule="gate")))
    assert review.get(a).events == 2  # type: ignore[union-attr]


def test_line_crossings_default_to_detection_and_rules_can_override(
    security_backend: SecurityBackend,
) -> None:
    store = ReviewStore(
        security_backend.new(),
        severity_of=lambda cam, rule, _t: "detection" if rule == "quiet" else None,
    )
    store.ingest(start(make_event(0, rule="line", type=EventType.LINE_CROSSING)))
    store.ingest(start(make_event(1, rule="quiet", type=EventType.ZONE_INTRUSION)))
    store.ingest(start(make_event(2, rule="gate", type=EventType.ZONE_INTRUSION)))
    severities = {i.rule: i.severity for i in store.list(None)[0]}
    assert severities == {"line": "detection", "quiet": "detection", "gate": "alert"}


def test_state_machine(review: ReviewStore) -> None:
    item = review.ingest(start(make_event(0)))
    with pytest.raises(ReviewError):
        review.reopen(item)
    assert review.acknowledge(item).state == "acknowledged"
    with pytest.raises(ReviewError):
        review.acknowledge(item)
    assigned = review.assign(item, "op1")
    assert assigned.state == "assigned" and assigned.assignee == "op1"
    with pytest.raises(ReviewError):
        review.resolve(item, "maybe", "")
    done = review.resolve(item, "true_alarm", "police called")
    assert done.state == "resolved" and done.resolution == "true_alarm" and done.resolved_at is not None
    # A resolved item takes no new events: they open a new item.
    assert review.ingest(start(make_event(1))) != item
    again = review.reopen(item)
    assert again.state == "reopened" and again.resolution is None and again.note == "police called"
    assert review.resolve(item, "duplicate", "").state == "resolved"
    text = review.metrics.ack.collect()[0].samples  # type: ignore[union-attr]
    assert any(s.name.endswith("_count") and s.value == 1 for s in text)
    resolved = review.metrics.resolve.collect()[0].samples  # type: ignore[union-attr]
    # Time to resolve is measured once, at the first resolution.
    assert sum(s.value for s in resolved if s.name.endswith("_count")) == 1


def test_comments_and_seen_per_user(review: ReviewStore) -> None:
    item = review.ingest(start(make_event(0)))
    review.comment(item, "op1", "  đã gọi bảo vệ  ")
    with pytest.raises(ReviewError):
        review.comment(item, "op1", "   ")
    assert [(c["author"], c["text"]) for c in review.comments(item)] == [("op1", "đã gọi bảo vệ")]
    review.mark_seen(item, "op1")
    review.mark_seen(item, "op1")
    assert review.seen_by(item) == ["op1"] and review.seen_items("op2", [item]) == set()


def test_list_pages_filters_and_changes(review: ReviewStore) -> None:
    ids = [
        review.ingest(start(make_event(i * 100, camera=f"cam{i % 2 + 1}", rule=f"r{i}", track_ids=[i])))
        for i in range(5)
    ]
    first, cursor = review.list(None, limit=2)
    assert [i.id for i in first] == ids[:-3:-1] and cursor is not None
    rest, end_cursor = review.list(None, limit=10, cursor=cursor)
    assert [i.id for i in rest] == ids[2::-1] and end_cursor is None
    assert {i.camera for i in review.list(["cam2"])[0]} == {"cam2"}
    assert review.list([])[0] == []  # no camera in scope
    window = review.list(None, since=T0 + timedelta(seconds=150), until=T0 + timedelta(seconds=350))[0]
    assert [i.id for i in window] == [ids[3], ids[2]]
    assert [i.id for i in review.list(None, camera=["cam1"], state=["new"], severity="alert")[0]] == ids[::-2]
    mark = review.last_seq()
    review.acknowledge(ids[1])
    review.comment(ids[0], "op1", "xem")
    assert [i.id for i in review.changed_since(mark, None)] == [ids[1], ids[0]]
    assert review.changed_since(mark, ["cam2"])[0].id == ids[1]
    assert review.event_ids(ids[0]) == ["ev000"] and review.item_of_event("ev100") == ids[1]


def test_review_api_flow_and_filters(client: TestClient, parts: Parts) -> None:
    for i, (cam, ty) in enumerate([("cam1", EventType.ZONE_INTRUSION), ("cam2", EventType.LINE_CROSSING)]):
        ev = make_event(i, camera=cam, type=ty, rule=f"r{i}")
        parts.store.apply(start(ev))
        parts.security.review.ingest(start(ev))
    items = client.get("/review/items").json()["items"]
    assert [i["camera"] for i in items] == ["cam2", "cam1"] and not any(i["seen"] for i in items)
    assert [
        i["camera"] for i in client.get("/review/items", params={"severity": "alert"}).json()["items"]
    ] == ["cam1"]
    assert client.get("/review/items", params={"khu_pho": "kp2"}).json()["items"][0]["camera"] == "cam2"
    assert client.get("/review/items", params={"state": "resolved"}).json()["items"] == []
    item = items[1]["id"]
    assert client.post(f"/review/items/{item}/seen").json()["seen"] is True
    assert client.post(f"/review/items/{item}/resolve", json={"resolution": "nope"}).status_code == 422
    assert client.post(f"/review/items/{item}/reopen").status_code == 409
    assert client.post(f"/review/items/{item}/assign", json={"username": "ghost"}).status_code == 409
    client.post(f"/review/items/{item}/assign", json={"username": "admin"})
    client.post(f"/review/items/{item}/comments", json={"text": "xem lại camera"})
    detail = client.get(f"/review/items/{item}").json()
    assert (
        detail["state"] == "assigned" and detail["assignee"] == "admin" and detail["event_ids"] == ["ev000"]
    )
    assert detail["comments"][0]["text"] == "xem lại camera" and detail["seen_by"] == ["admin"]
