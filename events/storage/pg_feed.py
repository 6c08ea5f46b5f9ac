"""The live feed shared by several processes: PostgreSQL LISTEN/NOTIFY into a local :class:`EventBus`.

Writers (camera workers, anywhere) store with ``PostgresEventStore(notify_feed=True)``: each stored
transition is notified inside the transaction that stores it, so the server delivers it only at
commit (the feed never shows an event the API cannot read; a batch skipped as already applied, or a
transition older than the stored one, sends nothing), and to every listening session in commit
order. An API process runs one :class:`PgFeedListener`, which publishes each notified transition on
its bus (SSE, review feeder, traffic board, MQTT/webhooks subscribe there as before).

**Order.** Notifications arrive in commit order, so each camera's transitions (one writer stores
them in sequence) arrive in the order they were stored.

**Losing the connection** (a server restart, the network). The listener reconnects with backoff,
listens again, then catches up: it reads the events whose ``feed_seq`` (a number every stored
transition gives its event's row, ``migrations/postgres/0005``) is above its watermark, in
``feed_seq`` order, and publishes each as it stands, with the phase of its last stored transition
(``START``, ``UPDATE`` or ``END``: the ``phase_rank`` column). Transitions of one event superseded
while disconnected are folded into its latest (a subscriber sees ``END`` without the ``UPDATE`` s
before it); each camera's order is kept. Notifications that arrive around the reconnect for changes
already published are dropped by their ``feed_seq``, and those of an event the catch-up already
published in a later state by its id: nothing is published twice.

**The watermark** is a ``feed_seq`` W such that every transaction that drew a number up to W has
ended and its notification was received. Numbers are drawn before commit, so they are not in commit
order across writers: "the highest number seen" is not a safe catch-up point (a transaction that
drew a lower number may commit after it, while the listener is away). Every
``watermark_interval_s`` the listener reads the sequence (L), then the server's in-progress
transactions; once those have all ended it notifies itself a mark; receiving its own mark (after
every notification committed before it) sets W = L. This holds because a notifying writer's
transaction has its id before it draws a number (``PostgresEventStore.apply_batch``). The listener
is ready (:meth:`PgFeedListener.wait_ready`) after its first mark: from then on every transition a
notifying store commits is published exactly once, across any number of reconnects. Any transaction
holding a transaction id holds the watermark while it runs (the server cannot tell which of them are
feed writers); meanwhile the listener remembers each number it publishes (``stats().tracked``, some
70 bytes each), so a session left idle in a transaction for hours costs memory: set the server's
``idle_in_transaction_session_timeout``.

A notification too big for a payload (8000 bytes) arrives as a reference; the listener reads the
event on its connection and publishes it if its row still holds that transition (else the event
changed again: its later notification follows and carries the change, counted as ``folded``).
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
import time
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import psycopg
from pydantic import ValidationError

from events.model import EventTransition, Phase
from events.storage.bus import EventBus
from events.storage.pg_feed_payload import MARK, FeedMark, FeedNotice, parse_payload
from events.storage.postgres import _JOINS, _SELECT, PostgresEventStore, _event
from events.storage.store import StorageError

log = logging.getLogger(__name__)

_PHASE_OF_RANK = (Phase.START, Phase.UPDATE, Phase.END)  # the events table's phase_rank
_FEED_SELECT = _SELECT + ", e.feed_seq, e.phase_rank FROM events e" + _JOINS
APPLICATION_NAME = "khupho-feed"  # the listener's connection in pg_stat_activity
_LONGEST_WAIT_S = 0.25  # how long one wait for notifications lasts: how soon close() is noticed


@dataclass(frozen=True, slots=True)
class FeedStats:
    """Counters since the listener was made (for /metrics)."""

    notifications: int  # feed notifications received (whole and references), duplicates included
    published: int  # transitions published on the bus, from notifications and catch-ups
    references: int  # notifications too big to carry their transition: read from the database
    folded: int  # references whose event changed again before it was read (its next notice follows)
    duplicates: int  # notifications of changes already published (around a reconnect)
    malformed: int  # payloads on the channel that are not the feed's (logged)
    disconnects: int  # connections lost (or failed attempts to connect)
    reconnects: int  # connections made again after a loss
    catch_ups: int  # catch-ups done after reconnecting
    caught_up: int  # transitions published by catch-ups
    watermark: int  # the feed_seq up to which everything was received; -1 before ready
    tracked: int  # feed_seqs above the watermark remembered to drop duplicates (grows while it is held)
    connected: bool


class PgFeedListener:
    """Publishes on ``bus`` every transition stored with notify on in ``store``'s database and schema.

    Runs one daemon thread with its own connection (made with the store's settings; the store's pool
    is not used). Call :meth:`start`, then :meth:`wait_ready`; :meth:`close` stops it.
    """

    def __init__(
        self,
        store: PostgresEventStore,
        bus: EventBus,
        *,
        reconnect_initial_s: float = 0.2,
        reconnect_max_s: float = 5.0,
        watermark_interval_s: float = 1.0,
        catch_up_page: int = 1000,
    ) -> None:
        if not 0 < reconnect_initial_s <= reconnect_max_s:
            raise ValueError("need 0 < reconnect_initial_s <= reconnect_max_s")
        if watermark_interval_s <= 0 or catch_up_page < 1:
            raise ValueError("watermark_interval_s must be positive and catch_up_page at least 1")
        self._store = store
        self._bus = bus
        self._channel = store.feed_channel
        self._reconnect_initial_s = reconnect_initial_s
        self._reconnect_max_s = reconnect_max_s
        self._interval_s = watermark_interval_s
        self._page = catch_up_page
        self._token = secrets.token_hex(8)  # tells this listener's marks from other listeners'
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # guards the counters read by stats()
        # Owned by the listener thread:
        self._watermark: int | None = None
        self._seen: set[int] = set()  # feed_seqs above the watermark already published (or folded)
        self._caught_up_at: dict[str, int] = {}  # event id -> feed_seq a catch-up published it at
        self._pending: tuple[int, list[int]] | None = None  # (L, transactions in progress then)
        self._mark_sent: int | None = None
        self._connected = False
        self._counts = dict.fromkeys(
            (
                "notifications", "published", "references", "folded", "duplicates", "malformed",
                "disconnects", "reconnects", "catch_ups", "caught_up",
            ),
            0,
        )  # fmt: skip

    def __repr__(self) -> str:
        return f"PgFeedListener({self._store.name!r}, channel={self._channel!r})"

    # -- control ------------------------------------------------------------------

    def start(self) -> None:
        """Start listening on a daemon thread (it connects, and retries while it cannot)."""
        if self._thread is not None:
            raise RuntimeError("the listener was started already")
        self._thread = threading.Thread(target=self._run, name="pg-feed-listener", daemon=True)
        self._thread.start()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Whether the listener is ready: every transition committed from now on will be published."""
        return self._ready.wait(timeout)

    def close(self, timeout: float = 5.0) -> bool:
        """Stop and disconnect; ``False`` if the thread did not end within ``timeout`` seconds."""
        self._stop.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stats(self) -> FeedStats:
        with self._lock:
            return FeedStats(
                **self._counts,
                watermark=-1 if self._watermark is None else self._watermark,
                tracked=len(self._seen),
                connected=self._connected,
            )

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    # -- the thread -----------------------------------------------------------------

    def _run(self) -> None:
        delay = self._reconnect_initial_s
        lost_at: float | None = None
        while not self._stop.is_set():
            conn: psycopg.Connection[Any] | None = None
            try:
                conn = self._store.dedicated_connection(APPLICATION_NAME)
                conn.execute(f'LISTEN "{self._channel}"')
                self._pending = self._mark_sent = None
                caught: int | None = None
                if self._watermark is None:
                    self._start_watermark(conn)  # never ready yet: from now on, no history
                else:
                    caught = self._catch_up(conn)
                self._set_connected(True)
                if lost_at is not None and caught is not None:
                    self._count("reconnects")
                    log.warning(
                        "live feed from %s: reconnected after %.1f s, caught up %d transitions",
                        self._store.name, time.monotonic() - lost_at, caught,
                    )  # fmt: skip
                lost_at = None
                delay = self._reconnect_initial_s
                self._serve(conn)
            except (StorageError, psycopg.Error, OSError) as exc:
                self._set_connected(False)
                self._count("disconnects")
                message = self._store.scrub(str(exc).strip() or type(exc).__name__)
                if lost_at is None:
                    lost_at = time.monotonic()
                    what = "cannot connect" if self._watermark is None else "connection lost"
                    log.warning("live feed from %s: %s (%s); retrying", self._store.name, what, message)
                else:
                    log.info("live feed from %s: still no connection (%s)", self._store.name, message)
                # Jitter: the API processes of a cluster don't all come back at the same instant.
                self._stop.wait(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, self._reconnect_max_s)
            except Exception:
                # A bug, not an outage: log it and start afresh rather than leave the feed dead.
                self._set_connected(False)
                self._count("disconnects")
                lost_at = lost_at or time.monotonic()
                log.exception("live feed from %s: listener failed; reconnecting", self._store.name)
                self._stop.wait(delay)
                delay = min(delay * 2, self._reconnect_max_s)
            finally:
                if conn is not None:
                    with suppress(Exception):  # already broken: nothing more to release
                        conn.close()
        self._set_connected(False)

    def _set_connected(self, connected: bool) -> None:
        with self._lock:
            self._connected = connected

    def _serve(self, conn: psycopg.Connection[Any]) -> None:
        next_tick = time.monotonic()  # a watermark step at once: ready soon after (re)connecting
        while not self._stop.is_set():
            wait = min(_LONGEST_WAIT_S, max(0.0, next_tick - time.monotonic()))
            # Notifications that came while this thread ran queries wait in psycopg's backlog and
            # come first; stop_after=1 returns after the first packet (all it holds).
            for notify in list(conn.notifies(timeout=wait, stop_after=1)):
                self._handle(conn, notify.payload)
            if time.monotonic() >= next_tick:
                self._advance_watermark(conn)
                next_tick = time.monotonic() + self._interval_s

    # -- notifications ------------------------------------------------------------------

    def _handle(self, conn: psycopg.Connection[Any], payload: str) -> None:
        try:
            item = parse_payload(payload)
        except (ValueError, ValidationError) as exc:
            self._count("malformed")
            log.warning("live feed: a payload that is not the feed's on %s: %s", self._channel, exc)
            return
        if isinstance(item, FeedMark):
            if item.token == self._token and item.seq == self._mark_sent:
                self._set_watermark(item.seq)
            return
        self._count("notifications")
        if item.seq in self._seen or self._caught_up_at.get(item.event_id, -1) >= item.seq:
            self._count("duplicates")
            return
        # Read before it counts as seen: a read that fails (connection lost) leaves it to the catch-up.
        transition = item.transition if item.transition is not None else self._read_reference(conn, item)
        self._seen.add(item.seq)
        if transition is not None:
            self._bus.publish(transition)
            self._count("published")

    def _read_reference(self, conn: psycopg.Connection[Any], notice: FeedNotice) -> EventTransition | None:
        self._count("references")
        row = conn.execute(_FEED_SELECT + " WHERE e.id = %s", (notice.event_id,)).fetchone()
        if row is None or row[-2] != notice.seq:
            self._count("folded")  # changed again (its next notice follows) or deleted meanwhile
            return None
        return EventTransition(phase=notice.phase, event=_event(row[:-2]))

    def _catch_up(self, conn: psycopg.Connection[Any]) -> int:
        """Publish the events changed above the watermark, in feed_seq order; the number published."""
        assert self._watermark is not None
        after, published = self._watermark, 0
        while True:
            rows = conn.execute(
                _FEED_SELECT + " WHERE e.feed_seq > %s ORDER BY e.feed_seq LIMIT %s", (after, self._page)
            ).fetchall()
            for row in rows:
                seq, rank = row[-2], row[-1]
                after = seq
                if seq in self._seen:
                    continue  # its notification came before the connection was lost
                event = _event(row[:-2])
                self._seen.add(seq)
                self._caught_up_at[event.id] = seq
                self._bus.publish(EventTransition(phase=_PHASE_OF_RANK[rank], event=event))
                published += 1
            if len(rows) < self._page:
                break
        self._count("catch_ups")
        self._count("caught_up", published)
        self._count("published", published)
        return published

    # -- the watermark --------------------------------------------------------------------

    def _start_watermark(self, conn: psycopg.Connection[Any]) -> None:
        """Read the sequence (L), then the transactions in progress: once they have all ended,
        every transaction that drew a number up to L has ended."""
        row = conn.execute("SELECT last_value, is_called FROM events_feed_seq").fetchone()
        assert row is not None
        last = int(row[0]) if row[1] else 0
        in_progress = [int(r[0]) for r in conn.execute("SELECT txid_snapshot_xip(txid_current_snapshot())")]
        self._pending = (last, in_progress)

    def _advance_watermark(self, conn: psycopg.Connection[Any]) -> None:
        if self._mark_sent is not None:
            return  # waiting for the mark to come back
        if self._pending is None:
            self._start_watermark(conn)
        assert self._pending is not None
        last, in_progress = self._pending
        if in_progress:
            row = conn.execute(
                "SELECT count(*) FROM unnest(%s::bigint[]) AS x WHERE txid_status(x) = 'in progress'",
                (in_progress,),
            ).fetchone()
            if row is not None and row[0]:
                return  # not yet; checked again next time
        # The mark comes back after every notification committed before it.
        self._mark_sent = last
        self._pending = None
        conn.execute("SELECT pg_notify(%s, %s)", (self._channel, f"{MARK}:{self._token}:{last}"))

    def _set_watermark(self, seq: int) -> None:
        self._mark_sent = None
        if self._watermark is None or seq > self._watermark:
            with self._lock:
                self._watermark = seq
            self._seen = {s for s in self._seen if s > seq}
            self._caught_up_at = {e: s for e, s in self._caught_up_at.items() if s > seq}
        self._ready.set()
