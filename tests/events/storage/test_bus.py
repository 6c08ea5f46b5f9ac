from __future__ import annotations

import asyncio
import logging
import threading
import time
from datetime import UTC, datetime

import pytest

from events.model import Event, EventTransition, EventType, Phase
from events.storage.bus import (
    EventBus,
    Gap,
    OverflowPolicy,
    Subscription,
    SubscriptionClosed,
    SubscriptionOverflow,
)


def tr(
    i: int, camera: str = "cam1", type: EventType = EventType.ZONE_INTRUSION, phase: Phase = Phase.START
) -> EventTransition:
    ev = Event(
        id=f"ev{i}",
        camera=camera,
        rule="r",
        type=type,
        start_pts=float(i),
        start_time=datetime(2024, 5, 1, tzinfo=UTC),
    )
    return EventTransition(phase=phase, event=ev)


def drain(sub: Subscription) -> list[str]:
    out = []
    while (m := sub.get_nowait()) is not None:
        out.append(m.transition.event.id)
    return out


def test_fan_out_in_order_with_filters() -> None:
    bus = EventBus()
    everything = bus.subscribe()
    cam2 = bus.subscribe(accept=lambda t: t.event.camera == "cam2")
    for i in range(5):
        bus.publish(tr(i, camera=f"cam{1 + i % 2}"))
    assert drain(everything) == ["ev0", "ev1", "ev2", "ev3", "ev4"]
    assert drain(cam2) == ["ev1", "ev3"]
    assert bus.stats().published == 5 and bus.stats().subscribers == 2
    cam2.close()
    cam2.close()
    assert bus.stats().subscribers == 1
    with pytest.raises(SubscriptionClosed):
        cam2.get_nowait()


def test_message_ids_are_unique_and_increasing() -> None:
    bus = EventBus()
    ids = [bus.publish(tr(i)) for i in range(3)]
    assert [m.seq for m in ids] == [1, 2, 3]
    assert len({m.id for m in ids}) == 3 and all(m.id.startswith(bus.bus_id + "-") for m in ids)


def test_slow_subscriber_drops_oldest_counted_logged_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    slow = bus.subscribe(name="slow", maxsize=3)
    fast = bus.subscribe(name="fast", maxsize=100)
    t0 = time.perf_counter()
    for i in range(10):
        bus.publish(tr(i))
    assert time.perf_counter() - t0 < 0.5  # the producer never waited
    assert drain(slow) == ["ev7", "ev8", "ev9"]
    assert slow.dropped == 7 and slow.take_gap() == Gap(7) and slow.take_gap() is None
    assert len(drain(fast)) == 10 and fast.take_gap() is None
    assert bus.stats().dropped == 7
    assert "subscriber slow is slow" in caplog.text


def test_disconnect_policy_delivers_queued_then_raises() -> None:
    bus = EventBus()
    sub = bus.subscribe(maxsize=2, policy=OverflowPolicy.DISCONNECT)
    for i in range(3):
        bus.publish(tr(i))
    assert sub.closed
    assert drain_until_error(sub) == ["ev0", "ev1"]
    assert bus.stats().disconnected == 1 and bus.stats().subscribers == 0


def drain_until_error(sub: Subscription) -> list[str]:
    out = []
    with pytest.raises(SubscriptionOverflow):
        while True:
            m = sub.get_nowait()
            out.append(m.transition.event.id)
    return out


def test_async_consumer_is_woken_from_another_thread() -> None:
    bus = EventBus()

    async def main() -> list[tuple[str, float]]:
        sub = bus.subscribe()
        got = []

        def produce() -> None:
            for i in range(3):
                time.sleep(0.05)
                bus.publish(tr(i))

        threading.Thread(target=produce).start()
        t0 = time.perf_counter()
        for _ in range(3):
            m = await sub.get(timeout=2)
            got.append((m.transition.event.id, time.perf_counter() - t0))
        with pytest.raises(TimeoutError):
            await sub.get(timeout=0.05)
        sub.close()
        return got

    got = asyncio.run(main())
    assert [g[0] for g in got] == ["ev0", "ev1", "ev2"]
    assert got[-1][1] < 1.0  # live, not polled


def test_close_wakes_a_waiting_async_consumer() -> None:
    bus = EventBus()

    async def main() -> None:
        sub = bus.subscribe()
        threading.Timer(0.05, bus.close).start()
        with pytest.raises(SubscriptionClosed):
            await sub.get(timeout=2)
        with pytest.raises(SubscriptionClosed):
            bus.subscribe()

    asyncio.run(main())


def test_async_iteration_ends_on_close() -> None:
    bus = EventBus()

    async def main() -> list[str]:
        sub = bus.subscribe()
        bus.publish(tr(1))
        bus.publish(tr(2))
        threading.Timer(0.05, sub.close).start()
        out = []
        async for m in sub:
            out.append(m.transition.event.id)
            if len(out) == 2:
                await asyncio.sleep(0.2)
        return out

    assert asyncio.run(main()) == ["ev1", "ev2"]


def test_cancelled_get_leaves_no_waiter() -> None:
    bus = EventBus()

    async def main() -> None:
        sub = bus.subscribe()
        task = asyncio.ensure_future(sub.get())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        bus.publish(tr(1))  # must not touch the cancelled future
        assert (await sub.get(timeout=1)).transition.event.id == "ev1"

    asyncio.run(main())


def test_blocking_get_for_threads() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    threading.Timer(0.05, lambda: bus.publish(tr(1))).start()
    m = sub.get_blocking(timeout=2)
    assert m is not None and m.transition.event.id == "ev1"
    assert sub.get_blocking(timeout=0.01) is None


def test_replay_after_last_seen_id() -> None:
    bus = EventBus(history=5)
    msgs = [bus.publish(tr(i, camera="cam1" if i % 2 else "cam2")) for i in range(4)]
    sub = bus.subscribe(after=msgs[1].id)
    assert drain(sub) == ["ev2", "ev3"] and sub.take_gap() is None
    filtered = bus.subscribe(after=msgs[0].id, accept=lambda t: t.event.camera == "cam1")
    assert drain(filtered) == ["ev1", "ev3"]
    for i in range(4, 10):
        bus.publish(tr(i))
    late = bus.subscribe(after=msgs[1].id)  # ev2..ev4 left the history
    assert drain(late) == ["ev5", "ev6", "ev7", "ev8", "ev9"] and late.take_gap() == Gap(None)
    stranger = bus.subscribe(after="0000-3")  # an id from an earlier process
    assert drain(stranger) == [] and stranger.take_gap() == Gap(None)


def test_many_producers_every_subscriber_sees_seq_order() -> None:
    bus = EventBus()
    subs = [bus.subscribe(maxsize=10_000) for _ in range(3)]

    def produce(k: int) -> None:
        for i in range(500):
            bus.publish(tr(k * 1000 + i))

    threads = [threading.Thread(target=produce, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for sub in subs:
        seqs = []
        while (m := sub.get_nowait()) is not None:
            seqs.append(m.seq)
        assert seqs == list(range(1, 2001))


def test_a_failing_filter_only_skips_that_subscriber(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    bus = EventBus()
    bad = bus.subscribe(accept=lambda t: 1 / 0 > 0)
    good = bus.subscribe()
    bus.publish(tr(1))
    assert drain(bad) == [] and drain(good) == ["ev1"]
    assert "filter of subscription" in caplog.text


def test_publish_survives_a_subscriber_whose_loop_is_gone() -> None:
    bus = EventBus()

    async def wait_briefly() -> None:
        sub = bus.subscribe()
        with pytest.raises(TimeoutError):
            await sub.get(timeout=0.01)

    asyncio.run(wait_briefly())  # loop closed, subscription never closed by its owner
    bus.publish(tr(1))
    assert bus.stats().published == 1
