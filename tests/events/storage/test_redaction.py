"""Face redaction with YuNet and person heads, and the snapshot writer storing redacted + original."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from events.model import EventTransition, Phase
from events.redaction import FaceRedactor, blur_regions, head_regions
from events.rules.base import SnapshotCandidate
from events.storage.objects import LocalObjectStore
from events.storage.snapshot import SnapshotWriter, unredacted_key
from events.storage.spool import UploadSpool, link_to_store
from events.storage.sqlite import SqliteEventStore
from tests.api.support import make_event


@pytest.fixture(scope="module")
def redactor(shared_dir: Path) -> FaceRedactor:
    return FaceRedactor(shared_dir / "models" / "face_detection_yunet.onnx")


def test_head_regions_are_the_top_of_each_person_box() -> None:
    heads = head_regions(np.array([[100, 50, 140, 250], [0, 0, 10, 20]], np.float32))
    np.testing.assert_allclose(heads[0], [96, 50, 144, 106], atol=0.01)
    assert heads.shape == (2, 4) and head_regions(np.zeros((0, 4))).shape == (0, 4)


def test_blur_changes_only_the_regions() -> None:
    image = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    out = blur_regions(image, np.array([[20, 30, 80, 90], [-50, -50, 5, 5], [200, 200, 300, 300]]))
    changed = (out != image).any(axis=2)
    assert changed[30:90, 20:80].mean() > 0.9 and changed[:5, :5].mean() > 0.5
    changed[30:90, 20:80] = False
    changed[:5, :5] = False
    assert not changed.any() and out is not image


def test_yunet_finds_the_faces_in_a_real_photo(redactor: FaceRedactor, shared_dir: Path) -> None:
    image = cv2.imread(str(shared_dir / "images" / "bus.jpg"))
    faces = redactor.faces(image)
    assert len(faces) >= 2
    out = redactor.redact(image, np.zeros((0, 4), np.float32))
    for x1, y1, x2, y2 in faces.astype(int):
        patch, before = out[max(y1, 0) : y2, max(x1, 0) : x2], image[max(y1, 0) : y2, max(x1, 0) : x2]
        # Pixelated: far less detail than the face had.
        assert cv2.Laplacian(patch, cv2.CV_64F).var() < 0.5 * cv2.Laplacian(before, cv2.CV_64F).var()


def test_writer_stores_a_redacted_snapshot_and_the_original_beside_it(
    redactor: FaceRedactor, shared_dir: Path, tmp_path: Path
) -> None:
    image = cv2.imread(str(shared_dir / "images" / "zidane.jpg"))
    objects, store = LocalObjectStore(tmp_path / "media"), SqliteEventStore(tmp_path / "e.db")
    ev = make_event(1)
    store.apply(EventTransition(phase=Phase.START, event=ev))
    candidate = SnapshotCandidate(
        event_id=ev.id,
        camera="cam1",
        rule="gate",
        frame_index=0,
        pts=0.0,
        wall_time=ev.start_time.timestamp(),
        image=image,
        box=np.array([750, 40, 1150, 710], np.float32),  # Zidane, roughly
        confidence=0.9,
        class_name="person",
        track_id=1,
        boxes=np.zeros((0, 4), np.float32),
    )
    uploads = UploadSpool(
        objects,
        tmp_path / "spool",
        on_uploaded=link_to_store(store),
        max_bytes=1 << 30,
        retry_initial_s=0.05,
        retry_max_s=1.0,
    )
    uploads.start()
    with SnapshotWriter(uploads, redactor=redactor) as writer:
        writer.submit(candidate)
        writer.flush(10)
    uploads.close(timeout=10)
    key = store.get(ev.id).snapshot  # type: ignore[union-attr]
    assert key and objects.exists(unredacted_key(key))
    shown = cv2.imdecode(np.frombuffer(objects.get(key), np.uint8), cv2.IMREAD_COLOR)
    original = cv2.imdecode(np.frombuffer(objects.get(unredacted_key(key)), np.uint8), cv2.IMREAD_COLOR)
    assert len(redactor.faces(original)) >= 2 and len(redactor.faces(shown)) == 0
    store.close()
