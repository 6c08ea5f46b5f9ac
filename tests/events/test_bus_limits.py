"""The event bus holds at most ``max_subscribers`` subscriptions (each costs a queue)."""

from __future__ import annotations

import pytest

from events.storage.bus import EventBus, TooManySubscribers


def test_subscribers_are_bounded_and_slots_come_back() -> None:
    bus = EventBus(max_subscribers=2)
    first, second = bus.subscribe(name="a"), bus.subscribe(name="b")
    assert bus.full()
    with pytest.raises(TooManySubscribers):
        bus.subscribe(name="c")
    assert bus.stats().refused == 1
    first.close()
    third = bus.subscribe(name="c")
    assert bus.stats().subscribers == 2
    second.close()
    third.close()
