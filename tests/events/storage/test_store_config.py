"""events/storage/config.py: validation and building the configured stores."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from events.storage.config import (
    ACCESS_KEY_ENV,
    SECRET_KEY_ENV,
    S3ObjectsConfig,
    StorageConfig,
    open_event_store,
    open_object_store,
)
from events.storage.objects import LocalObjectStore
from events.storage.objects_s3 import S3ObjectStore
from events.storage.sqlite import SqliteEventStore
from events.storage.store import StorageError
from tests.conftest_s3 import S3Server


def test_defaults_are_local(tmp_path: Path) -> None:
    cfg = StorageConfig.model_validate(
        {"database": {"path": str(tmp_path / "e.db")}, "objects": {"root": str(tmp_path / "m")}}
    )
    assert isinstance(open_object_store(cfg.objects), LocalObjectStore)
    store = open_event_store(cfg.database)
    assert isinstance(store, SqliteEventStore)
    store.close()
    assert cfg.snapshots.quality == 85 and cfg.snapshots.max_side == 1280


@pytest.mark.parametrize(
    "doc, path",
    [
        ({"databse": {}}, ("databse",)),
        ({"objects": {"type": "local", "rooot": "x"}}, ("objects", "local", "rooot")),
        ({"objects": {"type": "ftp"}}, ("objects",)),
        ({"snapshots": {"quality": 0}}, ("snapshots", "quality")),
        (
            {
                "objects": {
                    "type": "s3",
                    "endpoint": "http://h:9000",
                    "bucket": "b1x",
                    "access_key": "a",
                    "secret_key": "s",
                }
            },
            ("objects", "s3", "endpoint"),
        ),
        (
            {
                "objects": {
                    "type": "s3",
                    "endpoint": "h:9000",
                    "bucket": "Bad_Bucket",
                    "access_key": "a",
                    "secret_key": "s",
                }
            },
            ("objects", "s3", "bucket"),
        ),
    ],
)
def test_errors_name_the_field(doc: dict, path: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError) as info:
        StorageConfig.model_validate(doc)
    assert info.value.errors()[0]["loc"][: len(path)] == path


def test_s3_keys_from_environment_and_secret_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ACCESS_KEY_ENV, raising=False)
    monkeypatch.delenv(SECRET_KEY_ENV, raising=False)
    doc = {"type": "s3", "endpoint": "127.0.0.1:9000", "bucket": "khupho"}
    with pytest.raises(ValidationError, match=ACCESS_KEY_ENV):
        S3ObjectsConfig.model_validate(doc)
    monkeypatch.setenv(ACCESS_KEY_ENV, "khupho")
    monkeypatch.setenv(SECRET_KEY_ENV, "top-secret-value")
    cfg = S3ObjectsConfig.model_validate(doc)
    assert cfg.access_key == "khupho" and cfg.secret_key is not None
    assert "top-secret-value" not in repr(cfg) and "top-secret-value" not in cfg.model_dump_json()


@pytest.mark.slow
def test_open_s3_store_checks_credentials(seaweedfs: S3Server) -> None:
    base = {
        "type": "s3",
        "endpoint": seaweedfs.endpoint,
        "bucket": "khupho-config-test",
        "access_key": seaweedfs.access_key,
    }
    store = open_object_store(S3ObjectsConfig.model_validate(base | {"secret_key": seaweedfs.secret_key}))
    assert isinstance(store, S3ObjectStore)
    with pytest.raises(StorageError, match="rejected credentials"):
        open_object_store(S3ObjectsConfig.model_validate(base | {"secret_key": "wrong-secret-xyz"}))
