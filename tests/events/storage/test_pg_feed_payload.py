"""The live feed's notification payloads: whole transitions, references for big ones, marks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from events.model import Event, EventTransition, EventType, Phase
from events.storage.config import SqliteStoreConfig, open_event_store
from events.storage.pg_feed_payload import (
    MAX_BODY_BYTES,
    MAX_PAYLOAD_BYTES,
    FeedMark,
    FeedNotice,
    feed_body,
    feed_channel,
    parse_payload,
)


def transition(note: str, phase: Phase = Phase.START) -> EventTransition:
    ev = Event(
        id="ev1",
        camera="cam1",
        rule="gate",
        type=EventType.LOITERING,
        start_pts=0.0,
        start_time=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        data={"note": note},
    )
    return EventTransition(phase=phase, event=ev)


def as_sent(seq: int, body: str) -> str:
    """What the server delivers: the store's SQL puts the feed_seq and ':' before the body."""
    return f"{seq}:{body}"


@given(st.text(max_size=3000), st.sampled_from(list(Phase)))
def test_a_transition_travels_whole_or_as_a_reference_and_always_fits(note: str, phase: Phase) -> None:
    t = transition(note, phase)
    body = feed_body(t)
    payload = as_sent(2**63 - 1, body)  # the longest feed_seq
    assert len(payload.encode()) <= MAX_PAYLOAD_BYTES
    notice = parse_payload(payload)
    assert isinstance(notice, FeedNotice)
    assert (notice.seq, notice.phase, notice.event_id) == (2**63 - 1, phase, "ev1")
    if len(t.model_dump_json().encode()) < MAX_BODY_BYTES:
        assert notice.transition == t
    else:
        assert notice.transition is None and body == f"r{phase}:ev1"


def test_multibyte_text_is_measured_in_bytes() -> None:
    # 2700 Vietnamese characters of 3 bytes each: under 8000 characters, over 8000 bytes.
    t = transition("ệ" * 2700)
    assert len(t.model_dump_json()) < MAX_BODY_BYTES < len(t.model_dump_json().encode())
    assert feed_body(t) == "rstart:ev1"


def test_marks_and_malformed_payloads() -> None:
    assert parse_payload("w:ab12:42") == FeedMark(token="ab12", seq=42)
    for bad in ("", "hello", "12:x{}", "12:t{not json", "12:rstart:", "12:rnope:ev1", "x:t{}"):
        with pytest.raises(ValueError):
            parse_payload(bad)


def test_channels_per_schema() -> None:
    assert feed_channel("public") == "khupho_feed"
    assert feed_channel("site2") == "khupho_feed_site2"
    assert len(feed_channel("s" * 63)) == 63  # an identifier's longest


def test_sqlite_has_no_shared_feed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="needs PostgreSQL"):
        open_event_store(SqliteStoreConfig(path=tmp_path / "e.db"), notify_feed=True)
