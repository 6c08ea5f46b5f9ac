"""ObjectTracker on synthetic moving boxes.

For an integration test on real detections (once the detector lands): run the
detector on a clip's frames at the analysis rate, then call
``track_detections(detections_per_frame, pts, fps)`` and check
``summarize_tracks`` (few ids per visible object, long tracks, no -1 ids).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pytest
import supervision as sv

from events.config import TrackerConfig
from events.tracking import ObjectTracker


def _detections(
    boxes: Sequence[Sequence[float]], classes: Sequence[str], conf: Sequence[float]
) -> sv.Detections:
    n = len(boxes)
    if n == 0:
        return sv.Detections.empty()
    return sv.Detections(
        xyxy=np.array(boxes, dtype=np.float32),
        confidence=np.array(conf, dtype=np.float32),
        class_id=np.arange(n),
        data={"class_name": np.array(classes)},
    )


def track_detections(
    detections: Sequence[sv.Detections],
    pts: Sequence[float],
    fps: float,
    config: TrackerConfig | None = None,
) -> list[sv.Detections]:
    """Run a fresh tracker over a sequence of per-frame detections (helper for integration tests)."""
    tracker = ObjectTracker(config or TrackerConfig(), fps)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the wrapper must keep ByteTrack quiet
        return [tracker.update(d, t) for d, t in zip(detections, pts, strict=True)]


@dataclass
class TrackSummary:
    ids: list[int]
    frames_per_id: dict[int, int]
    first_frame: dict[int, int]


def summarize_tracks(tracked: Sequence[sv.Detections]) -> TrackSummary:
    """Which ids appeared, in how many frames, and from which frame (helper for integration tests)."""
    frames_per_id: dict[int, int] = {}
    first: dict[int, int] = {}
    for i, dets in enumerate(tracked):
        assert dets.tracker_id is not None and (dets.tracker_id >= 0).all()
        assert len(np.unique(dets.tracker_id)) == len(dets)
        for tid in dets.tracker_id.tolist():
            frames_per_id[tid] = frames_per_id.get(tid, 0) + 1
            first.setdefault(tid, i)
    return TrackSummary(sorted(frames_per_id), frames_per_id, first)


def _two_walkers(n: int, hidden: range = range(0)) -> list[sv.Detections]:
    """A person walking right and a car driving left; the person is hidden during ``hidden``."""
    frames = []
    for i in range(n):
        person = [20 + 12 * i, 100, 60 + 12 * i, 200]
        car = [600 - 15 * i, 300, 700 - 15 * i, 360]
        boxes, classes, conf = [car], ["car"], [0.9]
        if i not in hidden:
            boxes, classes, conf = [person, car], ["person", "car"], [0.7, 0.9]
        frames.append(_detections(boxes, classes, conf))
    return frames


def test_ids_are_stable_and_fields_survive() -> None:
    fps = 10.0
    tracked = track_detections(_two_walkers(30), [i / fps for i in range(30)], fps)
    summary = summarize_tracks(tracked)
    assert len(summary.ids) == 2
    # Confirmed at the second frame (minimum_consecutive_frames=2), then every frame.
    assert len(tracked[0]) == 0
    assert all(v == 29 for v in summary.frames_per_id.values())
    for dets in tracked[1:]:
        by_class = dict(zip(dets.data["class_name"].tolist(), dets.tracker_id.tolist(), strict=True))
        assert set(by_class) == {"person", "car"}
        np.testing.assert_allclose(dets.confidence[dets.data["class_name"] == "car"], [0.9])
        np.testing.assert_allclose(dets.confidence[dets.data["class_name"] == "person"], [0.7])
        assert list(dets.tracker_id) == sorted(dets.tracker_id)
    ids = {tuple(zip(d.data["class_name"].tolist(), d.tracker_id.tolist(), strict=True)) for d in tracked[1:]}
    assert len(ids) == 1  # the same class -> id mapping on every frame


@pytest.mark.parametrize("gap", [3, 4, 5])
def test_id_survives_a_short_occlusion(gap: int) -> None:
    fps = 10.0
    hidden = range(10, 10 + gap)
    tracked = track_detections(_two_walkers(30, hidden), [i / fps for i in range(30)], fps)
    summary = summarize_tracks(tracked)
    assert len(summary.ids) == 2
    person_ids = {
        int(d.tracker_id[d.data["class_name"] == "person"][0])
        for d in tracked[1:]
        if "person" in d.data["class_name"]
    }
    assert len(person_ids) == 1
    assert all(len(tracked[i]) == 1 for i in hidden)  # only the car while the person is hidden


@pytest.mark.parametrize("fps", [5.0, 25.0])
def test_lost_buffer_is_in_seconds(fps: float) -> None:
    config = TrackerConfig(lost_buffer_s=1.5)

    def run(gap_s: float) -> int:
        n = int(4 * fps)
        hidden = range(int(fps), int(fps) + round(gap_s * fps))
        boxes = [
            _detections([] if i in hidden else [[100, 100, 140, 200]], ["person"], [0.8]) for i in range(n)
        ]
        return len(summarize_tracks(track_detections(boxes, [i / fps for i in range(n)], fps, config)).ids)

    assert run(1.0) == 1  # within the buffer: same id
    assert run(2.0) == 2  # beyond it: a new track


def test_defaults_for_missing_fields_and_reset() -> None:
    tracker = ObjectTracker(TrackerConfig(), 10.0)
    bare = sv.Detections(xyxy=np.array([[0, 0, 10, 10]], dtype=np.float32), class_id=np.array([3]))
    for i in range(3):
        out = tracker.update(bare, i / 10)
    assert out.data["class_name"].tolist() == ["3"] and out.confidence.tolist() == [1.0]
    assert out.tracker_id.tolist() == [0]
    # Stream time going back resets tracking; new ids continue after the old ones.
    out = tracker.update(bare, 0.0)
    assert len(out) == 0
    out = tracker.update(bare, 0.1)
    assert out.tracker_id.tolist() == [1]
    # A repeated timestamp is tolerated (no warning, same track).
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tracker.update(bare, 0.1).tracker_id.tolist() == [1]
    assert len(tracker.update(sv.Detections.empty(), 0.2)) == 0


def test_unconfirmed_low_confidence_detections_never_come_out() -> None:
    fps = 10.0
    # Below track_activation_threshold: never starts a track.
    weak = [_detections([[0, 0, 50, 50]], ["person"], [0.3]) for _ in range(10)]
    assert all(len(d) == 0 for d in track_detections(weak, [i / fps for i in range(10)], fps))


def _van(i: int, dx: float = 8.0) -> list[float]:
    return [100 + dx * i, 100, 180 + dx * i, 160]


def test_one_object_under_two_classes_is_one_track() -> None:
    # The detector's NMS is per class: the same van comes as a car and as a truck (IoU 0.94).
    fps = 10.0
    frames = [
        _detections([_van(i), [101 + 8 * i, 101, 181 + 8 * i, 162]], ["car", "truck"], [0.6, 0.5])
        for i in range(20)
    ]
    tracked = track_detections(frames, [i / fps for i in range(20)], fps)
    assert len(summarize_tracks(tracked).ids) == 1
    assert all(d.data["class_name"].tolist() == ["car"] for d in tracked[1:])
    # Without the class-agnostic NMS the second box starts a second track: one van, two ids.
    config = TrackerConfig(class_agnostic_nms_iou=None)
    assert len(summarize_tracks(track_detections(frames, [i / fps for i in range(20)], fps, config)).ids) == 2


def test_class_is_the_vote_over_the_track_life() -> None:
    # A van labelled car in most frames and truck in some: the track says car throughout, once
    # the vote has seen the car frames; the confidence of each frame stays the frame's own.
    fps = 10.0
    labels = ["truck", "car", "car", "truck", "car", "car", "truck", "car", "car", "car"]
    conf = [0.5, 0.6, 0.6, 0.55, 0.6, 0.6, 0.7, 0.6, 0.6, 0.6]
    frames = [_detections([_van(i)], [c], [p]) for i, (c, p) in enumerate(zip(labels, conf, strict=True))]
    tracked = track_detections(frames, [i / fps for i in range(len(frames))], fps)
    # Votes count from the frame the track is confirmed (frame 1, a car) on.
    names = [d.data["class_name"].tolist() for d in tracked[1:]]
    assert names == [["car"]] * 9
    np.testing.assert_allclose([float(d.confidence[0]) for d in tracked[1:]], conf[1:])
    assert len({int(d.tracker_id[0]) for d in tracked[1:]}) == 1
    # class_id follows the voted name (the helper gives each row class_id = its row index: 0).
    assert all(d.class_id.tolist() == [0] for d in tracked[1:])


def test_vote_weights_confidence_and_forgets_old_tracks() -> None:
    from events.tracking import ClassVotes

    votes = ClassVotes(forget_after_s=1.0)

    def row(name: str, conf: float, track: int = 7) -> sv.Detections:
        d = _detections([_van(0)], [name], [conf])
        d.tracker_id = np.array([track])
        return d

    first = row("truck", 0.9)
    votes.vote(first, 0.0)
    assert first.data["class_name"].tolist() == ["truck"]
    for t in (0.1, 0.2):
        d = row("car", 0.4)
        votes.vote(d, t)
    assert d.data["class_name"].tolist() == ["truck"]  # 0.9 > 0.8
    d = row("car", 0.4)
    votes.vote(d, 0.3)
    assert d.data["class_name"].tolist() == ["car"]  # 1.2 > 0.9
    other = row("person", 0.5, track=8)
    votes.vote(other, 5.0)  # track 7 unseen for 4.7 s: forgotten
    assert len(votes) == 1
