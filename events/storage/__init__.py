"""Where events go: the event store (SQLite or PostgreSQL), object storage (local disk or S3),
the snapshot writer and the live bus. Reads ``events.model``; the rules never import this package."""

from events.storage.bus import EventBus
from events.storage.config import StorageConfig, open_event_store, open_object_store
from events.storage.objects import ObjectStore
from events.storage.snapshot import SnapshotWriter
from events.storage.store import EventFilters, EventStore, StorageError

__all__ = [
    "EventBus",
    "EventFilters",
    "EventStore",
    "ObjectStore",
    "SnapshotWriter",
    "StorageConfig",
    "StorageError",
    "open_event_store",
    "open_object_store",
]
