"""ClipRecorder on replayed footage: the clip of an event decodes end to end, with the pre- and post-roll."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import av
import pytest

from events.model import Event, EventTransition, EventType, Phase
from ingest.packet_ring import PacketRing
from ingest.replay import ReplaySource
from pipeline.clips import ClipRecorder, clip_key, make_ring
from pipeline.config import ClipConfig

PLAZA = "pedestrians_plaza_overhead_1280x720_h264.mp4"  # 25 fps, 13.56 s, keyframes at 0 and 5.88 s
STREET = "pedestrians_street_pets_768x576_msmpeg4.avi"  # MS-MPEG4: MP4 cannot carry it
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@dataclass
class Uploads:
    """The recorder's uploader: keeps what it is given (the service's adapter stores it instead)."""

    got: dict[str, tuple[str, bytes, str]] = field(default_factory=dict)
    calls: int = 0
    arrived: threading.Event = field(default_factory=threading.Event)

    def __call__(self, *, key: str, data: bytes, content_type: str, event_id: str) -> None:
        self.calls += 1
        self.got[event_id] = (key, data, content_type)
        self.arrived.set()


def _event(start: float, end: float | None = None, type: EventType = EventType.ZONE_INTRUSION) -> Event:
    return Event(
        id=f"ev-{type.value}-{start}",
        camera="cam",
        rule="yard",
        type=type,
        start_pts=start,
        end_pts=end,
        start_time=T0,
        active=end is None,
    )


def _wait_pts(ring: PacketRing, pts: float, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while (ring.newest or -1.0) < pts:
        assert time.monotonic() < deadline, f"the replay did not reach {pts} s"
        time.sleep(0.02)


def _decode(data: bytes, tmp_path: Path) -> tuple[list[av.VideoFrame], float]:
    path = tmp_path / "clip.mp4"
    path.write_bytes(data)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        duration = float(stream.duration * stream.time_base)
    return frames, duration


@pytest.mark.slow
def test_clip_of_a_replayed_event_decodes_with_pre_and_post_roll(footage_dir: Path, tmp_path: Path) -> None:
    config = ClipConfig(pre_roll_s=5.0, post_roll_s=5.0)
    ring = make_ring("cam", config)
    uploads = Uploads()
    recorder = ClipRecorder(upload=uploads, poll_s=0.05).start()
    recorder.add_camera("cam", ring, config)
    source = ReplaySource("cam", footage_dir / PLAZA, 5, speed=4.0, packets=ring).start()
    try:
        _wait_pts(ring, 8.2)
        event = _event(8.0)
        recorder.observe([EventTransition(phase=Phase.START, event=event)])
        _wait_pts(ring, 10.2)
        ended = event.model_copy(update={"end_pts": 10.0, "active": False})
        recorder.observe([EventTransition(phase=Phase.END, event=ended)])
        recorder.observe([EventTransition(phase=Phase.END, event=ended)])  # a replayed end: one clip
        # The post-roll runs to 15 s: past the file's end, into the replay's second loop.
        assert uploads.arrived.wait(20), recorder.stats()
        assert recorder.flush(5)
    finally:
        source.stop()
        recorder.close()
    assert uploads.calls == 1
    key, data, content_type = uploads.got[event.id]
    assert key == clip_key(event) == f"clips/cam/2026/05/01/{event.id}.mp4"
    assert content_type == "video/mp4"
    assert data[4:8] == b"ftyp" and data.index(b"moov") < data.index(b"mdat")  # faststart

    frames, duration = _decode(data, tmp_path)
    # From the last keyframe at or before 8 - 5 = 3 s (the one at 0 s) to 10 + 5 = 15 s.
    assert frames[0].key_frame and frames[0].time < 0.1
    # Packets are cut in decode order up to 15 s, so the last shown frame may end up to two frame
    # intervals later: its own duration and the B-frame reorder delay (one frame in this file).
    expected = 15.0 - 0.0
    assert expected <= duration <= expected + 2 / 25 + 1e-6
    assert expected * 25 <= len(frames) <= expected * 25 + 2
    times = [f.time for f in frames]
    assert times == sorted(times) and max(b - a for a, b in itertools.pairwise(times)) < 0.1
    assert recorder.stats().written == 1 and recorder.stats().pending == 0


@pytest.mark.slow
def test_a_long_event_gets_its_first_max_length_and_other_types_none(
    footage_dir: Path, tmp_path: Path
) -> None:
    config = ClipConfig(pre_roll_s=2.0, post_roll_s=5.0, max_length_s=4.0)
    ring = make_ring("cam", config)
    uploads = Uploads()
    recorder = ClipRecorder(upload=uploads, poll_s=0.05).start()
    recorder.add_camera("cam", ring, config)
    source = ReplaySource("cam", footage_dir / PLAZA, 5, speed=4.0, loop=False, packets=ring).start()
    try:
        _wait_pts(ring, 7.0)
        still_open = _event(7.0)
        crossing = _event(7.0, type=EventType.LINE_CROSSING)
        recorder.observe(
            [EventTransition(phase=Phase.START, event=e) for e in (still_open, crossing)]
            + [EventTransition(phase=Phase.START, event=_event(7.0).model_copy(update={"camera": "other"}))]
        )
        assert uploads.arrived.wait(20), recorder.stats()
    finally:
        source.stop()
        recorder.close()
    assert list(uploads.got) == [still_open.id]  # no clip for line crossings, nor unknown cameras
    frames, duration = _decode(uploads.got[still_open.id][1], tmp_path)
    # 7 - 2 = 5 s is before the keyframe at 5.88: the clip starts at 0 s and runs to 5 + 4 = 9 s.
    assert frames[0].key_frame
    assert 9.0 <= duration <= 9.0 + 2 / 25 + 1e-6


def test_a_codec_mp4_cannot_carry_is_counted_not_uploaded(footage_dir: Path) -> None:
    config = ClipConfig(pre_roll_s=1.0, post_roll_s=0.0)
    ring = make_ring("cam", config)
    uploads = Uploads()
    recorder = ClipRecorder(upload=uploads, poll_s=0.05).start()
    recorder.add_camera("cam", ring, config)
    source = ReplaySource("cam", footage_dir / STREET, 5, speed=8.0, packets=ring).start()
    try:
        deadline = time.monotonic() + 30
        while source.stats.packets < 30:  # 3 s of the 10 fps file demuxed (the ring keeps none)
            assert time.monotonic() < deadline
            time.sleep(0.02)
        event = _event(2.0, end=2.5)
        recorder.observe([EventTransition(phase=Phase.START, event=event)])
        recorder.observe([EventTransition(phase=Phase.END, event=event)])
        assert recorder.flush(10)
    finally:
        source.stop()
        recorder.close()
    assert uploads.calls == 0
    assert recorder.stats().unsupported == 1
    assert ring.unsupported is not None and "msmpeg4" in ring.unsupported
    assert ring.stats.packets == 0 and ring.stats.skipped > 0  # nothing held for clips it cannot make


def test_close_cuts_what_is_held_when_the_camera_stops(footage_dir: Path, tmp_path: Path) -> None:
    config = ClipConfig()
    ring = make_ring("cam", config)
    uploads = Uploads()
    recorder = ClipRecorder(upload=uploads, poll_s=0.05).start()
    recorder.add_camera("cam", ring, config)
    source = ReplaySource("cam", footage_dir / PLAZA, 5, speed=8.0, loop=False, packets=ring).start()
    _wait_pts(ring, 6.0)
    event = _event(6.0)
    recorder.observe([EventTransition(phase=Phase.START, event=event)])
    source.stop()
    held = ring.newest
    recorder.close()
    frames, duration = _decode(uploads.got[event.id][1], tmp_path)
    assert frames[0].key_frame and held is not None
    assert held <= duration <= held + 2 / 25 + 1e-6  # from the keyframe at 0 to the last packet held
