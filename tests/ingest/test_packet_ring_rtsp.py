"""A live RTSP camera's packets kept in a ring and remuxed to MP4, across a reconnect (GStreamer server)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path

import av
import pytest

from ingest import CameraSourceConfig, RtspSource
from ingest.packet_ring import PacketRing
from ingest.remux import remux_mp4

from .conftest import RtspServer

pytestmark = pytest.mark.slow


def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _decode(data: bytes, path: Path) -> list[av.VideoFrame]:
    path.write_bytes(data)
    with av.open(str(path)) as container:
        return list(container.decode(container.streams.video[0]))


def test_rtsp_packets_remux_to_a_playable_mp4_across_a_reconnect(
    rtsp_server: Callable[..., RtspServer], stream_media: dict[str, Path], tmp_path: Path
) -> None:
    server = rtsp_server({"cam": stream_media["highway"]})  # H.264 320x240, 25 fps, keyframe every 0.8 s
    ring = PacketRing("cam", seconds=30.0, max_bytes=64 << 20)
    config = CameraSourceConfig(
        url=server.url("cam"),
        open_timeout_s=2.0,
        read_timeout_s=1.0,
        backoff={"initial_s": 0.05, "max_s": 0.3, "multiplier": 2.0, "jitter": 0.1},
    )
    source = RtspSource("cam", config, packets=ring).start()
    try:
        assert _wait(lambda: (ring.newest or 0.0) > 3.0, 20), ring.stats
        first = ring.cut(0.0, 3.0)
        assert first is not None and first.entries[0].keyframe
        frames = _decode(remux_mp4(first), tmp_path / "first.mp4")
        assert frames[0].key_frame and frames[0].width == 320
        assert len(frames) == len(first.entries)  # every packet kept is a picture that decodes

        # The camera goes away and comes back: a new session on the same timeline.
        before = ring.newest or 0.0
        server.stop()
        server.start()
        assert _wait(lambda: ring.stats.sessions >= 2 and (ring.newest or 0.0) > before + 2.0, 20), ring.stats
    finally:
        source.stop()
    run = ring.cut(before - 2.0, 1e9)
    assert run is not None and len({e.session.number for e in run.entries}) == 2
    frames = _decode(remux_mp4(run), tmp_path / "both.mp4")
    assert frames[0].key_frame and len(frames) == len(run.entries)
    times = [f.time for f in frames]
    assert times == sorted(times)
    # The outage (the server's restart) shows as a gap in the clip, as on the frame timeline.
    assert max(b - a for a, b in itertools.pairwise(times)) > 0.2
    assert times[-1] - times[0] == pytest.approx(run.end - run.start, abs=0.1)
