"""An in-process publish/subscribe bus for event transitions (live views, SSE, webhooks later).

Producers (rule threads) call :meth:`EventBus.publish`; it never blocks on a
consumer. Each subscriber has its own bounded queue, readable from asyncio
(``await sub.get()``) or from a thread (``sub.get_blocking()``).

A subscriber that falls behind hits an explicit overflow policy:

- ``drop_oldest`` (default): the oldest waiting transition is discarded to make
  room; the loss is counted (per subscription and bus-wide), logged, and
  reported to the consumer by :meth:`Subscription.take_gap` so it can tell its
  client (SSE sends an ``event: gap``) and the client can re-read ``/events``.
- ``disconnect``: the subscription is closed; the consumer gets
  :class:`SubscriptionOverflow` after the transitions already queued.

Every transition gets a message id ``{bus}-{seq}``. The bus keeps the last
``history`` messages so a client that reconnects with the last id it saw (SSE's
``Last-Event-ID``) is replayed what it missed, or told of a gap if too much passed
or the id belongs to an earlier process.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Self

from events.model import EventTransition

log = logging.getLogger(__name__)


class OverflowPolicy(StrEnum):
    DROP_OLDEST = "drop_oldest"
    DISCONNECT = "disconnect"


class SubscriptionClosed(Exception):
    """The subscription was closed (by its owner, the bus, or an overflow) and has nothing left."""


class TooManySubscribers(Exception):
    """The bus already has ``max_subscribers`` subscriptions (each costs a queue): refuse, don't grow."""


class SubscriptionOverflow(SubscriptionClosed):
    """The subscriber fell behind under the ``disconnect`` policy and was cut off."""


@dataclass(frozen=True, slots=True)
class BusMessage:
    id: str  # "{bus id}-{seq}", usable as SSE id / Last-Event-ID
    seq: int
    transition: EventTransition


@dataclass(frozen=True, slots=True)
class Gap:
    """Transitions a subscriber did not receive: ``missed`` is their number, ``None`` if unknown."""

    missed: int | None


@dataclass(frozen=True, slots=True)
class BusStats:
    published: int
    subscribers: int
    dropped: int  # transitions discarded from slow subscribers' queues, all subscriptions ever
    disconnected: int  # subscriptions closed by the ``disconnect`` overflow policy
    refused: int = 0  # subscriptions refused because max_subscribers were live


Accept = Callable[[EventTransition], bool]


class Subscription:
    """One consumer's bounded queue. Create with :meth:`EventBus.subscribe`; close when done."""

    def __init__(
        self,
        bus: EventBus,
        sub_id: int,
        name: str,
        maxsize: int,
        policy: OverflowPolicy,
        accept: Accept | None,
    ) -> None:
        self._bus = bus
        self.id = sub_id
        self.name = name
        self.maxsize = maxsize
        self.policy = policy
        self._accept = accept
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._queue: deque[BusMessage] = deque()
        self._waiter: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | None = None
        self._closed = False
        self._overflowed = False
        self._missed = 0  # since the last take_gap()
        self._missed_unknown = False
        self.dropped = 0  # ever
        self._last_log = 0.0

    def __repr__(self) -> str:
        return f"Subscription({self.id}, {self.name!r}, queued={len(self._queue)}, dropped={self.dropped})"

    @property
    def closed(self) -> bool:
        return self._closed

    def qsize(self) -> int:
        return len(self._queue)

    # -- producer side (called by the bus, under its lock) -------------------

    def _offer(self, message: BusMessage) -> bool:
        """Queue the message; ``False`` if the subscription is (now) closed."""
        if self._accept is not None:
            try:
                if not self._accept(message.transition):
                    return True
            except Exception:
                log.exception(
                    "filter of subscription %s failed; transition %s skipped", self.name, message.id
                )
                return True
        with self._lock:
            if self._closed:
                return False
            if len(self._queue) >= self.maxsize:
                if self.policy is OverflowPolicy.DISCONNECT:
                    self._overflowed = True
                    self._closed = True
                    log.warning(
                        "subscriber %s fell %d transitions behind: disconnected", self.name, self.maxsize
                    )
                    self._wake()
                    return False
                self._queue.popleft()
                self.dropped += 1
                self._missed += 1
                self._bus._count_drop()
                now = time.monotonic()
                if now - self._last_log > 10.0:  # one line per 10 s per subscriber; counters keep the rest
                    self._last_log = now
                    log.warning(
                        "subscriber %s is slow (queue of %d full): dropped its oldest transition, "
                        "%d dropped so far",
                        self.name, self.maxsize, self.dropped,
                    )  # fmt: skip
            self._queue.append(message)
            self._wake()
            return True

    def _wake(self) -> None:
        """Wake a waiting consumer (lock held)."""
        self._cond.notify_all()
        if self._waiter is not None:
            loop, fut = self._waiter
            self._waiter = None
            try:
                loop.call_soon_threadsafe(_resolve, fut)
            except RuntimeError:  # the consumer's loop is closed: nobody will read again
                self._closed = True

    def _prefill(self, messages: list[BusMessage], gap: Gap | None) -> None:
        with self._lock:
            for m in messages[-self.maxsize :]:
                self._queue.append(m)
            overflow = max(0, len(messages) - self.maxsize)
            if gap is not None:
                if gap.missed is None:
                    self._missed_unknown = True
                else:
                    self._missed += gap.missed
            self._missed += overflow

    # -- consumer side ----------------------------------------------------------

    def take_gap(self) -> Gap | None:
        """What was missed since the last call (overflow or an incomplete replay), or ``None``."""
        with self._lock:
            if self._missed_unknown:
                self._missed_unknown, self._missed = False, 0
                return Gap(None)
            if self._missed:
                missed, self._missed = self._missed, 0
                return Gap(missed)
            return None

    def _pop(self) -> BusMessage | None:
        """Next message, ``None`` if empty; raises when closed and drained (lock held)."""
        if self._queue:
            return self._queue.popleft()
        if self._overflowed:
            raise SubscriptionOverflow(f"subscriber {self.name} fell behind and was disconnected")
        if self._closed:
            raise SubscriptionClosed(f"subscription {self.name} is closed")
        return None

    def get_nowait(self) -> BusMessage | None:
        with self._lock:
            return self._pop()

    def get_blocking(self, timeout: float | None = None) -> BusMessage | None:
        """The next message for a thread consumer; ``None`` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while (message := self._pop()) is None:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            return message

    async def get(self, timeout: float | None = None) -> BusMessage:
        """The next message; ``TimeoutError`` after ``timeout`` seconds (for heartbeats)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            with self._lock:
                message = self._pop()
                if message is not None:
                    return message
                fut: asyncio.Future[None] = loop.create_future()
                self._waiter = (loop, fut)
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                await asyncio.wait_for(fut, remaining)
            except BaseException:  # timeout or cancellation: stop waiting before leaving
                with self._lock:
                    if self._waiter is not None and self._waiter[1] is fut:
                        self._waiter = None
                raise

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> BusMessage:
        try:
            return await self.get()
        except SubscriptionClosed:
            raise StopAsyncIteration from None

    def close(self) -> None:
        """Stop receiving; idempotent. Pending consumers are woken and see :class:`SubscriptionClosed`."""
        with self._lock:
            already = self._closed
            self._closed = True
            self._queue.clear()
            self._wake()
        self._bus._remove(self)
        if not already:
            log.debug("subscription %s closed", self.name)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class EventBus:
    """Fan-out of transitions to subscribers; thread-safe, never blocks producers."""

    def __init__(self, *, history: int = 1024, maxsize: int = 1024, max_subscribers: int = 1024) -> None:
        self.bus_id = secrets.token_hex(4)  # a new one per process: ids of an earlier run are not replayed
        self.default_maxsize = maxsize
        # Live streams, publishers and the traffic board together; each holds a queue of up to maxsize.
        self.max_subscribers = max_subscribers
        self._refused = 0
        self._lock = threading.Lock()
        self._subs: dict[int, Subscription] = {}
        self._history: deque[BusMessage] = deque(maxlen=history)
        self._seq = 0
        self._next_sub = 0
        self._dropped = 0
        self._disconnected = 0
        self._closed = False

    def publish(self, transition: EventTransition) -> BusMessage:
        """Deliver to every subscriber whose filter accepts it; returns the message with its id."""
        with self._lock:
            # Fan-out under the bus lock keeps every subscriber's order equal to seq order even with
            # several producer threads; each offer is a deque append, so the lock is held briefly.
            self._seq += 1
            message = BusMessage(id=f"{self.bus_id}-{self._seq}", seq=self._seq, transition=transition)
            self._history.append(message)
            gone = [sub for sub in self._subs.values() if not sub._offer(message)]
            for sub in gone:
                if sub._overflowed:
                    self._disconnected += 1
                self._subs.pop(sub.id, None)
        return message

    def subscribe(
        self,
        *,
        name: str = "",
        maxsize: int | None = None,
        policy: OverflowPolicy = OverflowPolicy.DROP_OLDEST,
        accept: Accept | None = None,
        after: str | None = None,
    ) -> Subscription:
        """A new subscription; ``accept`` filters transitions (runs on the producer's thread: keep it cheap).

        ``after`` is the id of the last message a reconnecting client saw: newer
        messages still in the history are queued first, and a gap is reported if
        some are no longer there.
        """
        size = maxsize or self.default_maxsize
        if size < 1:
            raise ValueError("maxsize must be at least 1")
        with self._lock:
            if self._closed:
                raise SubscriptionClosed("the event bus is closed")
            if len(self._subs) >= self.max_subscribers:
                self._refused += 1
                raise TooManySubscribers(f"the event bus has {self.max_subscribers} subscribers already")
            self._next_sub += 1
            sub = Subscription(self, self._next_sub, name or f"#{self._next_sub}", size, policy, accept)
            if after is not None:
                replay, gap = self._replay(after, accept)
                sub._prefill(replay, gap)
            self._subs[sub.id] = sub
        return sub

    def _replay(self, after: str, accept: Accept | None) -> tuple[list[BusMessage], Gap | None]:
        bus_id, _, seq_text = after.rpartition("-")
        if bus_id != self.bus_id or not seq_text.isdigit():
            return [], Gap(None)  # an id from an earlier process (or garbage): the client must resync
        seq = int(seq_text)
        messages = [
            m for m in self._history if m.seq > seq and (accept is None or _safe_accept(accept, m.transition))
        ]
        oldest = self._history[0].seq if self._history else self._seq + 1
        gap = Gap(None) if seq < oldest - 1 else None  # filtered-out losses cannot be counted
        return messages, gap

    def full(self) -> bool:
        """Whether a new subscription would be refused now."""
        with self._lock:
            return len(self._subs) >= self.max_subscribers

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.pop(sub.id, None)

    def _count_drop(self) -> None:
        # Called from _offer, under the bus lock.
        self._dropped += 1

    def stats(self) -> BusStats:
        with self._lock:
            return BusStats(
                published=self._seq,
                subscribers=len(self._subs),
                dropped=self._dropped,
                disconnected=self._disconnected,
                refused=self._refused,
            )

    def close(self) -> None:
        """Close every subscription (their consumers see :class:`SubscriptionClosed`); refuse new ones."""
        with self._lock:
            self._closed = True
            subs = list(self._subs.values())
        for sub in subs:
            sub.close()


def _safe_accept(accept: Accept, transition: EventTransition) -> bool:
    try:
        return accept(transition)
    except Exception:
        return False
