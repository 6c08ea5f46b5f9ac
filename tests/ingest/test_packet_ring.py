"""PacketRing: bounds in seconds and bytes, keyframe alignment, pins and cuts (real PyAV packets)."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import pytest
from av.video.stream import VideoStream
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.packet_ring import PacketRing
from ingest.video_source import VideoSource

PLAZA = "pedestrians_plaza_overhead_1280x720_h264.mp4"  # 25 fps, keyframes at 0 and 5.88 s


@pytest.fixture(scope="module")
def stream(footage_dir: Path) -> Iterator[VideoStream]:
    """A real H.264 stream: what ``begin`` copies codec parameters from (its time base is 1/12800)."""
    with av.open(str(footage_dir / PLAZA)) as container:
        yield container.streams.video[0]


def _packet(tick: int, size: int, keyframe: bool) -> av.Packet:
    packet = av.Packet(bytes(size))
    packet.pts = packet.dts = tick
    packet.is_keyframe = keyframe
    return packet


def test_keeps_whole_groups_back_to_a_keyframe_before_the_window(footage_dir: Path) -> None:
    ring = PacketRing("plaza", seconds=3.0, max_bytes=64 << 20)
    frames = list(VideoSource(footage_dir / PLAZA, analysis_fps=5, packets=ring))
    assert frames[-1].pts > 13
    # 13.56 s of video with keyframes at 0 and 5.88 s: 5.88 is before 13.56 - 3, so the first
    # group went, and the ring still starts at a keyframe at or before the window's start.
    assert ring.oldest == pytest.approx(5.88)
    assert ring.newest == pytest.approx(13.56)
    assert ring.stats.evicted == 147 and ring.stats.packets == 341 - 147
    assert ring.stats.bytes == sum(e.size for e in ring.cut(0, 99).entries)
    run = ring.cut(10.0, 12.0)
    assert run is not None and run.entries[0].keyframe and run.start == pytest.approx(5.88)
    assert run.end <= 12.0 and run.end == pytest.approx(12.0, abs=0.04)


def test_cut_starts_at_the_last_keyframe_at_or_before_the_start(footage_dir: Path) -> None:
    ring = PacketRing("plaza", seconds=60.0, max_bytes=64 << 20)
    for _ in VideoSource(footage_dir / PLAZA, analysis_fps=5, packets=ring):
        pass
    assert ring.cut(5.87, 8.0).start == pytest.approx(0.0)  # type: ignore[union-attr]
    assert ring.cut(5.88, 8.0).start == pytest.approx(5.88)  # type: ignore[union-attr]
    assert ring.cut(-10.0, 1.0).start == pytest.approx(0.0)  # type: ignore[union-attr]
    assert ring.cut(0.0, -1.0) is None  # ends before anything held


def test_a_pin_keeps_its_group_and_unpin_lets_it_go(stream: VideoStream) -> None:
    tick = 512  # one frame at 25 fps in 1/12800
    ring = PacketRing("cam", seconds=1.0, max_bytes=1 << 20)
    ring.begin(stream)
    ring.anchor(0.0)
    pin = None
    for i in range(200):
        if i == 30:
            pin = ring.pin(0.5)  # inside the first group (keyframes every 25 packets = 1 s)
        ring.push(_packet(i * tick, 100, keyframe=i % 25 == 0))
    assert ring.oldest == 0.0 and ring.stats.evicted == 0
    assert pin is not None
    ring.unpin(pin)
    ring.push(_packet(200 * tick, 100, keyframe=True))
    assert ring.oldest == pytest.approx(7.0)  # the last keyframe at or before 8.0 - 1.0


def test_bytes_bound_wins_over_a_pin_and_restarts_at_a_keyframe(stream: VideoStream) -> None:
    ring = PacketRing("cam", seconds=100.0, max_bytes=10_000)
    ring.begin(stream)
    ring.pin(0.0)
    for i in range(100):
        ring.push(_packet(i * 512, 500, keyframe=i % 10 == 0))
        assert ring.stats.bytes <= 10_000
    assert ring.stats.overflows > 0
    run = ring.cut(0.0, 1e9)
    assert run is not None and run.entries[0].keyframe
    # One group bigger than the bound: dropped whole, and nothing kept until the next keyframe.
    small = PacketRing("cam", seconds=100.0, max_bytes=1_000)
    small.begin(stream)
    for i in range(5):
        small.push(_packet(i * 512, 400, keyframe=i == 0))
    assert small.stats.packets == 0 and small.stats.skipped == 2
    small.push(_packet(5 * 512, 400, keyframe=True))
    assert small.stats.packets == 1


def test_a_new_session_starts_at_its_keyframe_on_the_anchored_timeline(stream: VideoStream) -> None:
    ring = PacketRing("cam", seconds=100.0, max_bytes=1 << 20)
    ring.begin(stream)
    ring.anchor(0.0)
    for i in range(50):
        ring.push(_packet(i * 512, 10, keyframe=i % 25 == 0))
    ring.begin(stream)  # a reconnect: the camera's clock restarts at 0
    ring.push(_packet(0, 10, keyframe=False))  # undecodable without its keyframe: skipped
    ring.anchor(12.0)  # the decode loop placed its first frame at 12 s on the frame timeline
    for i in range(1, 30):
        ring.push(_packet(i * 512, 10, keyframe=i % 25 == 1))
    assert ring.stats.skipped == 1 and ring.stats.sessions == 2
    assert ring.newest == pytest.approx(12.0 + 29 / 25)
    run = ring.cut(12.5, 20.0)
    assert run is not None and run.start == pytest.approx(12.04)
    assert run.entries[0].session is not ring.cut(0, 1).entries[0].session  # type: ignore[union-attr]


@settings(max_examples=60, deadline=None)
@given(
    groups=st.lists(
        st.tuples(st.integers(1, 40), st.integers(1, 5_000)),  # (packets in the group, bytes per packet)
        min_size=1,
        max_size=25,
    ),
    seconds=st.floats(0.1, 5.0),
    max_bytes=st.integers(2_000, 400_000),
    pin_at=st.one_of(st.none(), st.floats(0.0, 20.0)),
)
def test_bounds_and_keyframe_alignment_hold_for_any_stream(
    stream: VideoStream,
    groups: list[tuple[int, int]],
    seconds: float,
    max_bytes: int,
    pin_at: float | None,
) -> None:
    ring = PacketRing("cam", seconds=seconds, max_bytes=max_bytes)
    ring.begin(stream)
    ring.anchor(0.0)
    if pin_at is not None:
        ring.pin(pin_at)
    time_base = Fraction(1, 12800)
    tick = 512  # 25 fps
    n = 0
    keyframes: list[float] = []
    for count, size in groups:
        for j in range(count):
            ring.push(_packet(n * tick, size, keyframe=j == 0))
            if j == 0:
                keyframes.append(float(n * tick * time_base))
            n += 1
            held = ring.cut(-1e9, 1e9)
            # Bytes: never over the bound.
            assert ring.stats.bytes <= max_bytes
            if held is None:
                assert ring.stats.packets == 0
                continue
            # Alignment: what is held starts with a keyframe and runs in order without gaps.
            assert held.entries[0].keyframe
            ticks = [e.dts for e in held.entries]
            assert ticks == list(range(ticks[0], ticks[0] + tick * len(ticks), tick))
            assert sum(e.size for e in held.entries) == ring.stats.bytes
            if ring.stats.overflows == 0:
                # Seconds: a keyframe at or before the window start (and the pin) is still held
                # when one was ever pushed there.
                newest = float((n - 1) * tick * time_base)
                for wanted in [newest - seconds] + ([pin_at] if pin_at is not None else []):
                    if any(abs(k - wanted) < 1e-6 for k in keyframes):
                        continue  # a keyframe right at the boundary: float rounding decides, either is right
                    before = [k for k in keyframes if k <= wanted]
                    if before:
                        assert held.start <= before[-1] + 1e-9
                        run = ring.cut(wanted, newest + 1e-6)  # the ring's float seconds may round up
                        assert run is not None and run.start == pytest.approx(before[-1])
