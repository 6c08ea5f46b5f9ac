from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from detectors import YoloOnnxDetector
from detectors.batcher import BatcherClosed, InferenceBatcher
from tests.detectors.conftest import first_frames


@pytest.fixture(scope="module")
def mixed_frames(footage_dir: Path) -> dict[str, list[np.ndarray]]:
    # Three cameras with three different letterboxed input shapes at imgsz 640.
    return {
        "intersection": first_frames(footage_dir / "traffic_intersection_cctv_640x480_h264.mp4", 4, step=10),
        "plaza": first_frames(footage_dir / "pedestrians_plaza_overhead_1280x720_h264.mp4", 4, step=10),
        "highway": first_frames(footage_dir / "traffic_highway_cctv_320x240_mpeg4.avi", 4, step=10),
    }


def test_batched_equals_one_by_one(detector: YoloOnnxDetector, mixed_frames: dict) -> None:
    expected = {cam: [detector.detect([f])[0] for f in frames] for cam, frames in mixed_frames.items()}
    sizes: list[int] = []
    results: dict[str, list] = {cam: [] for cam in mixed_frames}
    with InferenceBatcher(
        detector,
        max_batch=8,
        max_wait_ms=50,
        on_batch=lambda *, batch_size, seconds: sizes.append(batch_size),
    ) as b:

        def camera(cam: str) -> None:
            futures = [b.submit(cam, f) for f in mixed_frames[cam]]
            results[cam] = [f.result(timeout=60) for f in futures]

        threads = [threading.Thread(target=camera, args=(cam,)) for cam in mixed_frames]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert max(sizes) > 1, "frames of several cameras should share inference calls"
    assert sum(sizes) == 12
    total = 0
    for cam, dets in results.items():
        assert len(dets) == len(expected[cam])
        for got, want in zip(dets, expected[cam], strict=True):  # same order as submitted
            assert got.class_id.tolist() == want.class_id.tolist()
            np.testing.assert_allclose(got.xyxy, want.xyxy, atol=0.01)
            total += len(got)
    assert total > 20  # real scenes: plenty of cars and people


def test_bad_picture_is_refused_with_its_source_named(detector: YoloOnnxDetector) -> None:
    with (
        InferenceBatcher(detector, max_wait_ms=10) as b,
        pytest.raises(ValueError, match=r"broken-cam: expected a BGR uint8"),
    ):
        b.submit("broken-cam", np.zeros((0, 0, 3), np.uint8))
    with (
        InferenceBatcher(detector, max_wait_ms=10) as b,
        pytest.raises(ValueError, match=r"grey-cam: .*\(48, 64\)"),
    ):
        b.submit("grey-cam", np.zeros((48, 64), np.uint8))


class FailsOnMarkedPicture(YoloOnnxDetector):
    """The real detector, failing when a picture's first pixel is 255 (a runtime fault stand-in)."""

    def detect(self, images):  # type: ignore[no-untyped-def]
        if any(im[0, 0, 0] == 255 for im in images):
            raise RuntimeError("inference fault")
        return super().detect(images)


def test_one_failing_picture_does_not_fail_its_batch(fp32_model: Path) -> None:
    faulty = FailsOnMarkedPicture(fp32_model)
    marked = np.zeros((64, 64, 3), np.uint8)
    marked[0, 0, 0] = 255
    with InferenceBatcher(faulty, max_batch=4, max_wait_ms=200) as b:
        futures = [
            b.submit("a", np.zeros((64, 64, 3), np.uint8)),
            b.submit("b", marked),
            b.submit("c", np.zeros((64, 64, 3), np.uint8)),
        ]
        with pytest.raises(RuntimeError, match="inference fault"):
            futures[1].result(timeout=30)
        assert len(futures[0].result(timeout=30)) == 0 and len(futures[2].result(timeout=30)) == 0


def test_close_finishes_queued_work_then_refuses(detector: YoloOnnxDetector) -> None:
    b = InferenceBatcher(detector, max_batch=2, max_wait_ms=0)
    futures = [b.submit("cam", np.zeros((64, 64, 3), np.uint8)) for _ in range(5)]
    b.close()
    assert all(f.done() and not f.exception() for f in futures)
    with pytest.raises(BatcherClosed):
        b.submit("cam", np.zeros((64, 64, 3), np.uint8))
