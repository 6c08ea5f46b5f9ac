"""A latest-value broadcast for state that clients display (traffic segments on signage).

Unlike the event bus, a state feed has nothing worth queueing: a board that
missed three updates only needs the newest. Each subscriber therefore holds at
most one pending value (the newest), so a slow client costs one reference, not a
growing queue, and ``publish`` (called from the board's thread) does O(1) work
per subscriber and never waits for one. The number of subscribers is bounded:
``subscribe`` raises :class:`FeedFull` beyond ``max_subscribers``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Generic, Self, TypeVar

T = TypeVar("T")


class FeedFull(Exception):
    """Too many subscribers already."""


class FeedClosed(Exception):
    """The feed or the subscription was closed."""


@dataclass(frozen=True, slots=True)
class FeedValue(Generic[T]):
    version: int
    value: T


class FeedSubscription(Generic[T]):
    def __init__(self, feed: StateFeed[T], sub_id: int) -> None:
        self._feed = feed
        self.id = sub_id
        self.seen = 0  # the last version handed out
        self.skipped = 0  # versions published but superseded before this subscriber read them
        self._waiter: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | None = None
        self._closed = False

    def _newer(self) -> FeedValue[T] | None:
        latest = self._feed._latest
        if self._closed:
            raise FeedClosed("subscription closed")
        if latest is None or latest.version <= self.seen:
            return None
        self.skipped += latest.version - self.seen - 1 if self.seen else 0
        self.seen = latest.version
        return latest

    def get_nowait(self) -> FeedValue[T] | None:
        with self._feed._lock:
            return self._newer()

    def get_blocking(self, timeout: float | None = None) -> FeedValue[T] | None:
        """The newest value not yet seen (for thread consumers); ``None`` after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._feed._cond:
            while (value := self._newer()) is None:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._feed._cond.wait(remaining)
            return value

    async def get(self, timeout: float | None = None) -> FeedValue[T]:
        """The newest value not yet seen; ``TimeoutError`` after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        with self._feed._lock:
            value = self._newer()
            if value is not None:
                return value
            fut: asyncio.Future[None] = loop.create_future()
            self._waiter = (loop, fut)
        try:
            await asyncio.wait_for(fut, timeout)
        finally:
            with self._feed._lock:
                self._waiter = None
        with self._feed._lock:
            value = self._newer()
        if value is None:  # woken by close
            raise FeedClosed("subscription closed")
        return value

    def _wake(self) -> None:
        if self._waiter is not None:
            loop, fut = self._waiter
            self._waiter = None
            try:
                loop.call_soon_threadsafe(_resolve, fut)
            except RuntimeError:  # the consumer's loop is gone
                self._closed = True

    def close(self) -> None:
        self._feed._remove(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class StateFeed(Generic[T]):
    """Thread-safe; ``publish`` never blocks on a subscriber."""

    def __init__(self, max_subscribers: int) -> None:
        self.max_subscribers = max_subscribers
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._subs: dict[int, FeedSubscription[T]] = {}
        self._latest: FeedValue[T] | None = None
        self._next = 0
        self.refused = 0  # subscriptions refused because the feed was full
        self._closed = False

    @property
    def latest(self) -> FeedValue[T] | None:
        return self._latest

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def publish(self, value: T) -> FeedValue[T]:
        with self._lock:
            version = 1 if self._latest is None else self._latest.version + 1
            self._latest = FeedValue(version, value)
            for sub in self._subs.values():
                sub._wake()
            self._cond.notify_all()
            return self._latest

    def subscribe(self) -> FeedSubscription[T]:
        """A new subscriber; its first ``get`` returns the current value at once (if any)."""
        with self._lock:
            if self._closed:
                raise FeedClosed("feed closed")
            if len(self._subs) >= self.max_subscribers:
                self.refused += 1
                raise FeedFull(f"{self.max_subscribers} subscribers already")
            self._next += 1
            sub = FeedSubscription(self, self._next)
            self._subs[sub.id] = sub
            return sub

    def _remove(self, sub: FeedSubscription[T]) -> None:
        with self._lock:
            sub._closed = True
            sub._wake()
            self._subs.pop(sub.id, None)
            self._cond.notify_all()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            subs = list(self._subs.values())
        for sub in subs:
            sub.close()
