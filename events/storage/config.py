"""Configuration of storage: the event database, the object store and snapshots.

In YAML (``storage:`` in the root config)::

    storage:
      database:
        path: /var/lib/khupho/events.db  # SQLite, the default; or, for several hosts:
        # type: postgres
        # host: db.internal
        # dbname: khupho
        # user: khupho
        # password: ...                # better: the KHUPHO_PG_PASSWORD environment variable
      objects:
        type: s3
        endpoint: 127.0.0.1:9000       # host:port, no scheme; secure: true for HTTPS
        bucket: khupho
        access_key: khupho
        # secret_key: ...              # better: the KHUPHO_S3_SECRET_KEY environment variable
      snapshots:
        max_side: 1280
        quality: 85

``open_event_store``/``open_object_store`` build the configured backends; an S3
store checks its credentials and bucket there, and a PostgreSQL store connects and
migrates its schema there, so a wrong secret or password stops start-up with a
message naming the endpoint (never the secret).
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from pydantic import (
    Discriminator,
    Field,
    SecretStr,
    Tag,
    field_validator,
    model_validator,
)

from events.storage.objects import LocalObjectStore, ObjectStore
from events.storage.retention import RetentionConfig
from events.storage.store import EventStore
from ingest.config import ConfigModel

if TYPE_CHECKING:
    from events.storage.snapshot import Redactor, SnapshotWriter
    from events.storage.spool import UploadSpool

ACCESS_KEY_ENV = "KHUPHO_S3_ACCESS_KEY"
SECRET_KEY_ENV = "KHUPHO_S3_SECRET_KEY"
PG_PASSWORD_ENV = "KHUPHO_PG_PASSWORD"


class SqliteStoreConfig(ConfigModel):
    type: Literal["sqlite"] = "sqlite"
    path: Path = Path(".khupho/events.db")


class PostgresStoreConfig(ConfigModel):
    """A PostgreSQL database; the user should own it (the schema is created and migrated at start-up).

    A password left out comes from ``KHUPHO_PG_PASSWORD``, else libpq's own ``PGPASSWORD`` or
    ``~/.pgpass``.
    """

    type: Literal["postgres"]
    host: str = Field(min_length=1)  # a name, an address, or a directory holding the Unix socket
    port: int = Field(5432, ge=1, le=65535)
    dbname: str = Field("khupho", min_length=1)
    user: str = Field("khupho", min_length=1)
    password: SecretStr | None = None  # SecretStr: never printed by repr() or logged config dumps
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = "prefer"
    pool_size: int = Field(4, ge=1, le=64)  # connections: the writers and the API's readers share them
    connect_timeout_s: int = Field(5, ge=2, le=120)  # libpq counts whole seconds, at least 2

    @model_validator(mode="before")
    @classmethod
    def _password_from_environment(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("password") is None and os.environ.get(PG_PASSWORD_ENV):
            data = dict(data)
            data["password"] = os.environ[PG_PASSWORD_ENV]
        return data


class LocalObjectsConfig(ConfigModel):
    type: Literal["local"] = "local"
    root: Path = Path(".khupho/media")
    fsync: bool = False  # survive power loss, at a cost per snapshot


def _endpoint(value: str) -> str:
    if "://" in value:
        raise ValueError("give host:port without a scheme (set secure: true for HTTPS)")
    if not re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+", value):
        raise ValueError(f"{value!r} is not a host or host:port")
    return value


class S3ObjectsConfig(ConfigModel):
    """An S3 bucket; keys left out come from ``KHUPHO_S3_ACCESS_KEY`` and ``KHUPHO_S3_SECRET_KEY``."""

    type: Literal["s3"]
    endpoint: str
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    access_key: str | None = None
    secret_key: SecretStr | None = None  # SecretStr: never printed by repr() or logged config dumps
    secure: bool = False
    region: str | None = None
    presign_endpoint: str | None = None  # the host:port browsers reach, if not ``endpoint``
    presign_secure: bool | None = None  # defaults to ``secure``
    presign_expiry_s: int = Field(3600, ge=1, le=7 * 86400)  # S3 caps presigned links at 7 days
    retries: int = Field(3, ge=0, le=10)

    @field_validator("endpoint", "presign_endpoint")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        return None if value is None else _endpoint(value)

    @model_validator(mode="before")
    @classmethod
    def _keys_from_environment(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            if data.get("access_key") is None:
                data["access_key"] = os.environ.get(ACCESS_KEY_ENV)
            if data.get("secret_key") is None and os.environ.get(SECRET_KEY_ENV):
                data["secret_key"] = os.environ[SECRET_KEY_ENV]
        return data

    @model_validator(mode="after")
    def _keys_given(self) -> Self:
        if not self.access_key:
            raise ValueError(f"access_key is required (or set {ACCESS_KEY_ENV})")
        if self.secret_key is None or not self.secret_key.get_secret_value():
            raise ValueError(f"secret_key is required (or set {SECRET_KEY_ENV})")
        return self

    @property
    def presign_expiry(self) -> timedelta:
        return timedelta(seconds=self.presign_expiry_s)


def _objects_type(value: object) -> str | None:
    # Local storage needs no ``type:`` line; anything else must say which backend it is.
    if isinstance(value, dict):
        return value.get("type", "local")
    return getattr(value, "type", None)


def _database_type(value: object) -> str | None:
    # SQLite needs no ``type:`` line (configs written before PostgreSQL existed have none).
    if isinstance(value, dict):
        return value.get("type", "sqlite")
    return getattr(value, "type", None)


DatabaseConfig = Annotated[
    Annotated[SqliteStoreConfig, Tag("sqlite")] | Annotated[PostgresStoreConfig, Tag("postgres")],
    Discriminator(_database_type),
]

ObjectsConfig = Annotated[
    Annotated[LocalObjectsConfig, Tag("local")] | Annotated[S3ObjectsConfig, Tag("s3")],
    Discriminator(_objects_type),
]


class SnapshotConfig(ConfigModel):
    enabled: bool = True
    max_side: int | None = Field(1280, ge=64)  # longer side in pixels; null keeps the frame's size
    quality: int = Field(85, ge=1, le=100)
    crop: bool = False  # the object and its surroundings instead of the whole frame
    max_pending: int = Field(16, ge=1, le=1024)  # events waiting for encoding; each holds one frame


class SpoolConfig(ConfigModel):
    """Media waiting on local disk while the object store cannot take it."""

    max_mb: int = Field(1024, ge=1)  # the cap; the oldest non-evidence media go first
    retry_initial_s: float = Field(1.0, gt=0)
    retry_max_s: float = Field(60.0, gt=0)


class StorageConfig(ConfigModel):
    # The service's own local state (the writer's journal, the upload spool, the heartbeat);
    # null: a "state" folder beside the SQLite file, or .khupho/state with a database server.
    state_dir: Path | None = None
    database: DatabaseConfig = Field(default_factory=SqliteStoreConfig)
    objects: ObjectsConfig = Field(default_factory=LocalObjectsConfig)
    snapshots: SnapshotConfig = Field(default_factory=SnapshotConfig)
    spool: SpoolConfig = Field(default_factory=SpoolConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)

    @property
    def local_state_dir(self) -> Path:
        if self.state_dir is not None:
            return self.state_dir
        db_path = getattr(self.database, "path", None)
        return Path(db_path).parent / "state" if db_path is not None else Path(".khupho/state")


def open_event_store(
    config: SqliteStoreConfig | PostgresStoreConfig, *, notify_feed: bool = False
) -> EventStore:
    """The configured event store, its schema migrated; raises :class:`events.storage.store.StorageError`
    if it cannot be used (the message names the database, never the password). ``notify_feed``: notify
    stored transitions for the live feed shared by several processes (PostgreSQL only, see
    ``events/storage/pg_feed.py``)."""
    if isinstance(config, SqliteStoreConfig):
        if notify_feed:
            raise ValueError("the live feed shared by several processes needs PostgreSQL, not SQLite")
        from events.storage.sqlite import SqliteEventStore

        return SqliteEventStore(config.path)
    from events.storage.postgres import PostgresEventStore  # psycopg is imported only when configured

    return PostgresEventStore(
        host=config.host,
        port=config.port,
        dbname=config.dbname,
        user=config.user,
        password=None if config.password is None else config.password.get_secret_value(),
        sslmode=config.sslmode,
        pool_size=config.pool_size,
        connect_timeout_s=config.connect_timeout_s,
        notify_feed=notify_feed,
    )


def open_upload_spool(
    objects: ObjectStore, directory: Path, config: SpoolConfig, *, store: EventStore
) -> UploadSpool:
    """The upload spool in ``directory`` (not started), linking each uploaded medium to its event in
    ``store``; the one place its settings become arguments (the service and cluster camera actors)."""
    from events.storage.spool import UploadSpool, link_to_store

    return UploadSpool(
        objects,
        directory,
        on_uploaded=link_to_store(store),
        max_bytes=config.max_mb << 20,
        retry_initial_s=config.retry_initial_s,
        retry_max_s=config.retry_max_s,
    )


def open_snapshot_writer(
    uploads: UploadSpool, config: SnapshotConfig, *, redactor: Redactor | None
) -> SnapshotWriter | None:
    """The snapshot writer (not started) into ``uploads``, or None when snapshots are off."""
    if not config.enabled:
        return None
    from events.storage.snapshot import SnapshotWriter

    return SnapshotWriter(
        uploads,
        max_side=config.max_side,
        quality=config.quality,
        crop=config.crop,
        max_pending=config.max_pending,
        redactor=redactor,
    )


def open_object_store(config: LocalObjectsConfig | S3ObjectsConfig) -> ObjectStore:
    """The configured object store; raises :class:`events.storage.store.StorageError` if it cannot be used."""
    if isinstance(config, LocalObjectsConfig):
        return LocalObjectStore(config.root, fsync=config.fsync)
    from events.storage.objects_s3 import S3ObjectStore  # minio is imported only when S3 is configured

    assert config.access_key is not None and config.secret_key is not None  # ensured by validation
    return S3ObjectStore(
        config.endpoint,
        config.access_key,
        config.secret_key.get_secret_value(),
        config.bucket,
        secure=config.secure,
        region=config.region,
        presign_endpoint=config.presign_endpoint,
        presign_secure=config.presign_secure,
        retries=config.retries,
    )
