from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ingest import Frame, SourceError
from ingest.frame_queue import FrameQueue
from ingest.replay import ReplaySource
from ingest.status import CameraState


def _frame(i: int) -> Frame:
    return Frame("cam", i, i / 5, 0.0, np.zeros((2, 2, 3), np.uint8))


def test_frame_queue_drops_oldest_and_counts() -> None:
    q = FrameQueue(2)
    for i in range(5):
        q.put(_frame(i))
    assert q.dropped == 3
    assert [q.get(0).index, q.get(0).index] == [3, 4]  # type: ignore[union-attr]
    assert q.get(0.01) is None
    stop = threading.Event()
    q.put(_frame(9))
    stop.set()
    assert [f.index for f in q.drain(stop, 0.01)] == [9]  # drained after stop, then ends


@pytest.mark.slow
def test_replay_paces_loops_and_keeps_a_continuous_timeline(footage_dir: Path) -> None:
    clip = footage_dir / "parking_lot_overhead_768x432_h264.mp4"  # 377 frames at 12.5 fps: 30.16 s
    src = ReplaySource("lot", clip, analysis_fps=5, speed=20).start()
    frames: list[Frame] = []
    t0 = time.monotonic()
    for frame in src.frames():
        frames.append(frame)
        if frame.pts > 40:  # into the second loop
            break
    elapsed = time.monotonic() - t0
    status = src.status()
    assert src.stop()
    assert status.state is CameraState.ONLINE and status.frames_analysed >= len(frames)
    assert src.status().state is CameraState.STOPPED
    pts = [f.pts for f in frames]
    assert all(b > a for a, b in itertools.pairwise(pts))  # continuous across the loop
    assert 40 / 20 * 0.8 < elapsed < 40 / 20 * 3  # paced at 20x real time, not decoder speed
    gaps = np.diff(pts)
    assert set(np.round(gaps, 2)) <= {0.16, 0.24}  # 5 fps picked on a 12.5 fps grid
    assert np.mean(gaps) == pytest.approx(0.2, abs=0.01)
    assert frames[-1].index > 377  # indices keep counting in the second loop


def test_bad_file_fails_at_construction(tmp_path: Path) -> None:
    bad = tmp_path / "cam.mp4"
    bad.write_bytes(b"")
    with pytest.raises(SourceError, match=r"cam\.mp4"):
        ReplaySource("gate", bad)
    with pytest.raises(ValueError, match="speed must be positive"):
        ReplaySource("gate", bad, speed=0)
