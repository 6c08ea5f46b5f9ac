from __future__ import annotations

import os
from pathlib import Path

import pytest

from events.storage.objects import LocalObjectStore, ObjectNotFound, check_key, check_metadata
from events.storage.store import StorageError


@pytest.fixture
def objects(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "media")


def test_put_get_stat_open_delete(objects: LocalObjectStore) -> None:
    key = "snapshots/cam1/2024/05/01/abc.jpg"
    data = os.urandom(200_000)
    objects.put(key, data, "image/jpeg", {"camera": "cam1", "event-id": "abc"})
    assert objects.get(key) == data
    assert objects.exists(key)
    info = objects.stat(key)
    assert (info.size, info.content_type, info.metadata) == (
        len(data),
        "image/jpeg",
        {"camera": "cam1", "event-id": "abc"},
    )
    chunks = list(objects.open(key, chunk_size=65536))
    assert len(chunks) == 4 and b"".join(chunks) == data
    assert objects.presigned_url(key) is None
    objects.put(key, b"new", "image/jpeg")  # replace
    assert objects.get(key) == b"new" and objects.stat(key).metadata == {}
    objects.delete(key)
    objects.delete(key)  # deleting twice is fine
    assert not objects.exists(key)
    with pytest.raises(ObjectNotFound):
        objects.get(key)
    with pytest.raises(ObjectNotFound):
        objects.open(key)  # raised by the call, before iteration
    with pytest.raises(ObjectNotFound):
        objects.stat("snapshots")  # a directory is not an object


def test_write_is_atomic_no_temporaries_left(objects: LocalObjectStore) -> None:
    for i in range(5):
        objects.put("a/b.jpg", bytes([i]) * 1000)
    names = sorted(p.name for p in (objects.root / "a").iterdir())
    assert names == ["b.jpg", "b.jpg.meta.json"]


def test_open_can_be_abandoned(objects: LocalObjectStore) -> None:
    objects.put("x.bin", b"0" * 300_000)
    it = objects.open("x.bin", chunk_size=1000)
    assert next(it) == b"0" * 1000
    it.close()  # the file is closed; nothing leaks


@pytest.mark.parametrize(
    "key",
    [
        "../escape.jpg",
        "a/../../escape.jpg",
        "/etc/passwd",
        "a//b",
        "./a",
        "a/.",
        "",
        "a\\..\\b",
        "C:/x",
        "x\x00y",
        "a/b.meta.json",
    ],
)
def test_unsafe_keys_are_refused(objects: LocalObjectStore, tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError):
        objects.put(key, b"x")
    with pytest.raises(ValueError):
        objects.get(key)
    with pytest.raises(ValueError):
        objects.delete(key)
    assert not (tmp_path / "escape.jpg").exists()


def test_symlink_out_of_root_is_refused(objects: LocalObjectStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (objects.root / "link").symlink_to(outside)
    with pytest.raises(ValueError, match="outside"):
        objects.put("link/x.jpg", b"x")
    assert list(outside.iterdir()) == []


def test_key_and_metadata_rules() -> None:
    assert check_key("snapshots/cam-1/2024/x.y.jpg") == "snapshots/cam-1/2024/x.y.jpg"
    assert check_metadata({"camera": "cam 1", "event-id": "x"}) == {"camera": "cam 1", "event-id": "x"}
    for bad in ({"Camera": "x"}, {"camera": "é"}, {"camera": "a\nb"}, {"ca mera": "x"}):
        with pytest.raises(ValueError):
            check_metadata(bad)


def test_unwritable_root_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError, match="cannot create"):
        LocalObjectStore(blocker / "media")


def test_write_failure_is_a_storage_error(objects: LocalObjectStore) -> None:
    (objects.root / "snapshots").write_text("a file where a directory should be")
    with pytest.raises(StorageError, match="cannot write"):
        objects.put("snapshots/cam1/x.jpg", b"x")
