"""What one notification of the shared live feed carries: written by the PostgreSQL store, read by
:class:`events.storage.pg_feed.PgFeedListener`.

The store sends, inside the transaction that stores a transition (``pg_notify``), on the channel
:func:`feed_channel` of its schema, one of::

    {feed_seq}:t{transition as JSON}      the whole transition
    {feed_seq}:r{phase}:{event id}        a reference: the transition's JSON was too long for a payload

``feed_seq`` is the number the store gave the event's row for this transition (see
``migrations/postgres/0005_feed_seq.sql``); the server writes it and the ``:`` before the body,
which the store builds here. PostgreSQL refuses payloads of 8000 bytes or more, so a transition
whose JSON would not fit (an event with very large ``data``) goes as a reference and the listener
reads the event from the database. The listener also sends itself marks (``w:{token}:{feed_seq}``,
see the listener) on the same channel.
"""

from __future__ import annotations

from dataclasses import dataclass

from events.model import EventTransition, Phase

# The server's limit: a payload must be shorter than 8000 bytes.
MAX_PAYLOAD_BYTES = 7999
# Room for what the server puts before the body: a feed_seq (a BIGINT: at most 19 digits) and ":".
_SEQ_ROOM = 20
MAX_BODY_BYTES = MAX_PAYLOAD_BYTES - _SEQ_ROOM

FULL = "t"
REFERENCE = "r"
MARK = "w"


def feed_channel(schema: str) -> str:
    """The channel of the live feed of khupho's tables in ``schema`` (a lower-case identifier)."""
    return "khupho_feed" if schema == "public" else f"khupho_feed_{schema}"[:63]


def feed_body(transition: EventTransition) -> str:
    """The notification's body for ``transition``: whole when it fits, else a reference."""
    text = FULL + transition.model_dump_json()
    # Four bytes per character at most in UTF-8: count the bytes only when it could matter.
    if len(text) * 4 <= MAX_BODY_BYTES or len(text.encode()) <= MAX_BODY_BYTES:
        return text
    return f"{REFERENCE}{transition.phase}:{transition.event.id}"


@dataclass(frozen=True, slots=True)
class FeedNotice:
    """A stored transition: ``transition`` when the payload carried it, else a reference to read."""

    seq: int
    phase: Phase
    event_id: str
    transition: EventTransition | None


@dataclass(frozen=True, slots=True)
class FeedMark:
    """A listener's watermark mark (see :class:`events.storage.pg_feed.PgFeedListener`)."""

    token: str
    seq: int


def parse_payload(payload: str) -> FeedNotice | FeedMark:
    """The notice or mark in ``payload``; ``ValueError`` (pydantic's included) when malformed."""
    head, sep, body = payload.partition(":")
    if not sep:
        raise ValueError("no ':' in the payload")
    if head == MARK:
        token, _, seq = body.rpartition(":")
        return FeedMark(token=token, seq=int(seq))
    seq_number = int(head)
    kind, rest = body[:1], body[1:]
    if kind == FULL:
        transition = EventTransition.model_validate_json(rest)
        return FeedNotice(seq_number, transition.phase, transition.event.id, transition)
    if kind == REFERENCE:
        phase, sep, event_id = rest.partition(":")
        if not sep or not event_id:
            raise ValueError("a reference without an event id")
        return FeedNotice(seq_number, Phase(phase), event_id, None)
    raise ValueError(f"unknown kind {kind!r}")
