from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from events.model import Event, EventTransition, EventType, Phase
from events.storage.objects import LocalObjectStore
from events.storage.snapshot import SnapshotWriter, encode_snapshot, label_colour, snapshot_key
from events.storage.spool import UploadSpool, link_to_store
from events.storage.sqlite import SqliteEventStore

GREY = 90


def frame(h: int = 480, w: int = 640) -> np.ndarray:
    return np.full((h, w, 3), GREY, np.uint8)


def decode(jpeg: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None, "not a decodable JPEG"
    return img


def near(pixel: np.ndarray, colour: tuple[int, int, int], tol: int = 40) -> bool:
    return bool(np.all(np.abs(pixel.astype(int) - colour) <= tol))


def test_jpeg_decodes_with_the_box_drawn_and_input_untouched() -> None:
    img = frame()
    before = img.copy()
    jpeg = encode_snapshot(img, (200, 150, 400, 350), "person", 0.87)
    assert jpeg[:2] == b"\xff\xd8"
    out = decode(jpeg)
    assert out.shape == img.shape
    np.testing.assert_array_equal(img, before)
    colour = label_colour("person")
    # Middle of each box edge carries the box colour; the box's inside and far corners stay grey.
    for x, y in [(300, 150), (300, 350), (200, 250), (400, 250)]:
        assert near(out[y, x], colour), (x, y, out[y, x])
    for x, y in [(300, 250), (20, 460), (620, 20)]:
        assert near(out[y, x], (GREY, GREY, GREY), 12), (x, y, out[y, x])
    # The label sits on a filled tag above the box.
    tag = out[130:147, 200:270].reshape(-1, 3)
    assert np.mean([near(p, colour) for p in tag]) > 0.5


def test_label_moves_inside_when_box_touches_the_top() -> None:
    out = decode(encode_snapshot(frame(), (10, 0, 200, 200), "car", 0.5))
    tag = out[0:16, 10:50].reshape(-1, 3)
    assert np.mean([near(p, label_colour("car")) for p in tag]) > 0.5


def test_max_side_and_quality() -> None:
    img = frame(1080, 1920)
    big = encode_snapshot(img, (100, 100, 500, 500), "dog", 0.9, quality=95)
    small = encode_snapshot(img, (100, 100, 500, 500), "dog", 0.9, max_side=640, quality=60)
    assert decode(small).shape == (360, 640, 3)
    assert len(small) < len(big)
    out = decode(small)
    assert near(
        out[round(300 / 3), round(100 / 3)], label_colour("dog")
    )  # the box was scaled with the picture


def test_crop_keeps_the_box_and_its_surroundings() -> None:
    img = frame()
    out = decode(encode_snapshot(img, (300, 200, 340, 280), "person", 0.7, crop=True))
    assert out.shape[0] < img.shape[0] and out.shape[1] < img.shape[1]
    assert out.shape[1] >= 80 and out.shape[0] >= 160


def test_other_boxes_are_outlined() -> None:
    others = np.array([[20, 300, 120, 400], [500, 300, 600, 400]], np.float32)
    out = decode(encode_snapshot(frame(), (250, 100, 350, 200), "person", 0.8, other_boxes=others))
    assert near(out[350, 20], label_colour("person"), 50)
    assert near(out[350, 600], label_colour("person"), 50)
    assert near(out[350, 300], (GREY, GREY, GREY), 12)


@pytest.mark.parametrize(
    "image, box",
    [
        (np.zeros((10, 10), np.uint8), (0, 0, 5, 5)),
        (np.zeros((10, 10, 3), np.float32), (0, 0, 5, 5)),
        (np.zeros((10, 10, 3), np.uint8), (0, 0, 5)),
        (np.zeros((10, 10, 3), np.uint8), (0, 0, float("nan"), 5)),
    ],
)
def test_bad_input_is_refused(image: np.ndarray, box: tuple[float, ...]) -> None:
    with pytest.raises(ValueError):
        encode_snapshot(image, box, "x", 0.5)


def test_box_outside_the_frame_is_clipped() -> None:
    decode(encode_snapshot(frame(), (-50, -50, 5000, 5000), "truck", 0.6))


def test_snapshot_key_layout() -> None:
    when = datetime(2024, 5, 1, 23, 59, tzinfo=UTC)
    assert snapshot_key("cam1", "abc", when) == "snapshots/cam1/2024/05/01/abc.jpg"
    assert snapshot_key("front door/../x", "..", when) == "snapshots/front_door_.._x/2024/05/01/_.jpg"


@dataclass
class Candidate:
    """Shaped like events.rules.base.SnapshotCandidate (the fields the writer reads)."""

    event_id: str
    confidence: float
    camera: str = "cam1"
    class_name: str = "person"
    image: np.ndarray = field(default_factory=frame)
    box: np.ndarray = field(default_factory=lambda: np.array([100, 100, 200, 300], np.float32))
    wall_time: float = datetime(2024, 5, 1, 8, 30, tzinfo=UTC).timestamp()
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))


@pytest.fixture
def parts(tmp_path: Path) -> tuple[LocalObjectStore, SqliteEventStore]:
    store = SqliteEventStore(tmp_path / "e.db")
    yield LocalObjectStore(tmp_path / "media"), store
    store.close()


def start_event(store: SqliteEventStore, event_id: str) -> None:
    store.apply(
        EventTransition(
            phase=Phase.START,
            event=Event(
                id=event_id,
                camera="cam1",
                rule="r",
                type=EventType.ZONE_INTRUSION,
                start_pts=0.0,
                start_time=datetime(2024, 5, 1, 8, 30, tzinfo=UTC),
            ),
        )
    )


def test_writer_stores_jpeg_metadata_and_key(parts: tuple[LocalObjectStore, SqliteEventStore]) -> None:
    objects, store = parts
    start_event(store, "ev1")
    with SnapshotWriter(_spool(objects, store), max_side=320) as writer:
        assert writer.submit(Candidate("ev1", 0.8))
        assert writer.flush(5)
        assert writer.submit(Candidate("ev1", 0.9, class_name="person"))
        assert not writer.submit(Candidate("ev1", 0.5))  # worse than what was written or is queued
        assert writer.flush(5)
    key = "snapshots/cam1/2024/05/01/ev1.jpg"
    assert decode(objects.get(key)).shape == (240, 320, 3)
    info = objects.stat(key)
    assert info.content_type == "image/jpeg"
    assert info.metadata == {"camera": "cam1", "event-id": "ev1", "class": "person", "confidence": "0.9000"}
    ev = store.get("ev1")
    assert ev is not None and ev.snapshot == key and ev.score == pytest.approx(0.9)
    s = writer.stats()
    assert (s.written, s.not_better, s.failed, s.dropped, s.pending) == (2, 1, 0, 0, 0)


def test_writer_full_queue_keeps_best_per_event_and_counts_drops(
    parts: tuple[LocalObjectStore, SqliteEventStore], caplog: pytest.LogCaptureFixture
) -> None:
    objects, store = parts
    writer = SnapshotWriter(_spool(objects, store), max_pending=2)  # not started yet: the queue only fills
    assert writer.submit(Candidate("a", 0.5))
    assert writer.submit(Candidate("b", 0.6))
    assert writer.submit(Candidate("a", 0.7))  # replaces a's waiting candidate, keeps its place
    assert not writer.submit(Candidate("a", 0.65))  # not better than the waiting one
    assert not writer.submit(Candidate("c", 0.99))  # a third event does not fit
    s = writer.stats()
    assert (s.pending, s.superseded, s.not_better, s.dropped, s.submitted) == (2, 1, 1, 1, 5)
    assert "snapshot queue full" in caplog.text
    writer.start()
    assert writer.flush(5)
    writer.close()
    assert store.get("a") is None  # the snapshot may land before its event...
    start_event(store, "a")
    ev = store.get("a")
    assert ev is not None and ev.score == pytest.approx(0.7)  # ...and is attached when it arrives
    assert objects.exists("snapshots/cam1/2024/05/01/b.jpg")
    assert not objects.exists("snapshots/cam1/2024/05/01/c.jpg")
    assert writer.stats().written == 2
    assert not writer.submit(Candidate("d", 0.9))  # closed: refused and counted
    assert writer.stats().dropped == 2


def test_an_upload_that_fails_waits_in_the_spool_and_lands_once(
    parts: tuple[LocalObjectStore, SqliteEventStore], caplog: pytest.LogCaptureFixture
) -> None:
    objects, store = parts
    (objects.root / "snapshots").write_text("a file where the snapshot folder should be")
    spool = _spool(objects, store)
    with SnapshotWriter(spool, max_pending=4) as writer:
        writer.submit(Candidate("x", 0.9))
        assert writer.flush(5)
        assert spool.stats().pending == 1 and spool.stats().spooled == 1
        assert "kept in the spool" in caplog.text
        writer.submit(Candidate("x", 0.95))  # a better one replaces the waiting copy: one object, one key
        assert writer.flush(5)
        assert spool.stats().pending == 1
        (objects.root / "snapshots").unlink()
        spool.start()
        assert spool.drain(10)
        spool.close(5)
    assert writer.stats().failed == 0
    assert objects.exists("snapshots/cam1/2024/05/01/x.jpg")
    start_event(store, "x")
    ev = store.get("x")
    assert ev is not None and ev.score == pytest.approx(0.95)


def test_writer_accepts_the_rules_candidate_type(parts: tuple[LocalObjectStore, SqliteEventStore]) -> None:
    base = pytest.importorskip("events.rules.base")
    names = {f.name for f in __import__("dataclasses").fields(base.SnapshotCandidate)}
    assert {"event_id", "camera", "image", "box", "confidence", "class_name"} <= names


def _spool(objects: LocalObjectStore, store: SqliteEventStore) -> UploadSpool:
    return UploadSpool(
        objects,
        objects.root.parent / "spool",
        on_uploaded=link_to_store(store),
        max_bytes=1 << 30,
        retry_initial_s=0.05,
        retry_max_s=1.0,
    )
