"""events/storage/config.py: validation and building the configured stores."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from events.storage.config import (
    ACCESS_KEY_ENV,
    PG_PASSWORD_ENV,
    SECRET_KEY_ENV,
    PostgresStoreConfig,
    S3ObjectsConfig,
    SqliteStoreConfig,
    StorageConfig,
    open_event_store,
    open_object_store,
)
from events.storage.objects import LocalObjectStore
from events.storage.objects_s3 import S3ObjectStore
from events.storage.sqlite import SqliteEventStore
from events.storage.store import StorageError
from tests.conftest_pg import PgServer
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
        ({"database": {"type": "mysql"}}, ("database",)),
        ({"database": {"type": "postgres"}}, ("database", "postgres", "host")),
        ({"database": {"type": "postgres", "host": "db", "port": 0}}, ("database", "postgres", "port")),
        (
            {"database": {"type": "postgres", "host": "db", "sslmode": "on"}},
            ("database", "postgres", "sslmode"),
        ),
        ({"database": {"type": "postgres", "host": "db", "path": "x.db"}}, ("database", "postgres", "path")),
        ({"database": {"type": "sqlite", "host": "db"}}, ("database", "sqlite", "host")),
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


def test_database_is_sqlite_unless_it_says_postgres(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PG_PASSWORD_ENV, raising=False)
    assert isinstance(StorageConfig().database, SqliteStoreConfig)
    assert isinstance(
        StorageConfig.model_validate({"database": {"path": "e.db"}}).database, SqliteStoreConfig
    )
    cfg = StorageConfig.model_validate({"database": {"type": "postgres", "host": "db.internal"}}).database
    assert isinstance(cfg, PostgresStoreConfig)
    assert (cfg.port, cfg.dbname, cfg.user, cfg.password, cfg.sslmode) == (
        5432,
        "khupho",
        "khupho",
        None,
        "prefer",
    )


def test_postgres_password_from_environment_and_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PG_PASSWORD_ENV, "pg-top-secret-value")
    cfg = PostgresStoreConfig.model_validate({"type": "postgres", "host": "db"})
    assert cfg.password is not None and cfg.password.get_secret_value() == "pg-top-secret-value"
    given = PostgresStoreConfig.model_validate({"type": "postgres", "host": "db", "password": "from-file"})
    assert given.password is not None and given.password.get_secret_value() == "from-file"  # the file wins
    for text in (repr(cfg), str(cfg), cfg.model_dump_json(), repr(StorageConfig(database=cfg))):
        assert "pg-top-secret-value" not in text


def test_open_postgres_store_and_a_wrong_password(postgres: PgServer) -> None:
    from events.storage.postgres import PostgresEventStore

    base = {"type": "postgres", "host": postgres.host, "port": postgres.port, "dbname": "postgres"}
    good = PostgresStoreConfig.model_validate(base | {"user": postgres.user, "password": postgres.password})
    store = open_event_store(good)
    assert isinstance(store, PostgresEventStore)
    assert store.count_events() >= 0
    store.close()
    with pytest.raises(StorageError, match=f"{postgres.host}:{postgres.port}/postgres.*password") as info:
        open_event_store(
            PostgresStoreConfig.model_validate(base | {"user": postgres.user, "password": "not-the-one-42"})
        )
    assert "not-the-one-42" not in str(info.value)
