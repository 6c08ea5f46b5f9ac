"""Camera leases in the shared PostgreSQL: who may write a camera's events, fenced by an epoch.

The controller takes a new lease (epoch + 1) for a camera before starting its
actor anywhere. The actor's event writer checks, inside every batch's
transaction, that the camera's epoch is still the one it was started with
(:class:`LeaseFence`), so an actor that was cut off but keeps running (a node
partitioned from the controller, a stalled process) cannot add events after its
camera was handed over: its batches are refused and set aside in the node's
``rejected.jsonl``. Batch ids carry the epoch (``{camera}@{epoch}-...``), so a
journal left on a node by an earlier actor is checked against its own epoch.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from events.storage.postgres import PostgresEventStore


class FencedOff(Exception):
    """A batch from a writer whose camera lease has moved on. Not a :class:`StorageError`: the
    sink must not retry it, and sets it aside."""


@dataclass(frozen=True, slots=True)
class Lease:
    camera: str
    epoch: int
    node: str
    since_us: int
    seen_us: int


# A writer frozen inside its batch's transaction (a node cut off mid-commit) holds its lease row; the
# controller must not wait on it for ever (its round fails and is retried, and the controller's status
# stays readable) until PostgreSQL drops that session.
LOCK_TIMEOUT = "SET LOCAL lock_timeout = '3s'"


def batch_prefix(camera: str, epoch: int) -> str:
    return f"{camera}@{epoch}"


def epoch_of_batch(batch_id: str) -> int | None:
    """The epoch a batch was written under (None for ids without one)."""
    _, at, rest = batch_id.rpartition("@")  # camera ids never hold "@" (the config checks them)
    epoch = rest.split("-", 1)[0]
    return int(epoch) if at and epoch.isdigit() else None


class Leases:
    """The lease table (migration 0004) of a PostgreSQL event store."""

    def __init__(self, store: PostgresEventStore) -> None:
        self.store = store

    def take(self, camera: str, node: str) -> int:
        """A new lease on ``camera`` for ``node``: the epoch its writer must carry."""
        now = _now_us()
        with self.store.transaction() as cur:
            cur.execute(LOCK_TIMEOUT)
            cur.execute(
                "INSERT INTO cluster_leases AS l VALUES (%s, 1, %s, %s, %s) "
                "ON CONFLICT (camera) DO UPDATE SET epoch = l.epoch + 1, node = EXCLUDED.node, "
                "since_us = EXCLUDED.since_us, seen_us = EXCLUDED.seen_us RETURNING epoch",
                (camera, node, now, now),
            )
            row = cur.fetchone()
        assert row is not None
        return int(row[0])

    def take_many(self, nodes: dict[str, str]) -> dict[str, int]:
        """New leases for many cameras (camera -> node) in one statement: camera -> epoch."""
        if not nodes:
            return {}
        now = _now_us()
        cameras = list(nodes)
        with self.store.transaction() as cur:
            cur.execute(LOCK_TIMEOUT)
            cur.execute(
                "INSERT INTO cluster_leases AS l "
                "SELECT c, 1, n, %s, %s FROM unnest(%s::text[], %s::text[]) AS t(c, n) "
                "ON CONFLICT (camera) DO UPDATE SET epoch = l.epoch + 1, node = EXCLUDED.node, "
                "since_us = EXCLUDED.since_us, seen_us = EXCLUDED.seen_us RETURNING camera, epoch",
                (now, now, cameras, [nodes[c] for c in cameras]),
            )
            return {row[0]: int(row[1]) for row in cur.fetchall()}

    def seen(self, cameras: Iterable[str], at_us: int | None = None) -> None:
        """The cameras' actors answered now (their last-alive time, for ending open events)."""
        names = list(cameras)
        if not names:
            return
        with self.store.transaction() as cur:
            cur.execute(
                "UPDATE cluster_leases SET seen_us = %s WHERE camera = ANY(%s)",
                (at_us or _now_us(), names),
            )

    def all(self) -> dict[str, Lease]:
        with self.store.transaction() as cur:
            cur.execute("SELECT camera, epoch, node, since_us, seen_us FROM cluster_leases")
            return {r[0]: Lease(*r) for r in cur.fetchall()}


@dataclass(frozen=True, slots=True)
class LeaseFence:
    """The check a camera writer's batches run first in their transaction (``apply_batch(fence=)``)."""

    camera: str
    epoch: int

    def __call__(self, cursor: Any, /) -> None:
        cursor.execute("SELECT epoch FROM cluster_leases WHERE camera = %s FOR SHARE", (self.camera,))
        row = cursor.fetchone()
        current = None if row is None else int(row[0])
        if current != self.epoch:
            raise FencedOff(
                f"camera {self.camera!r}: batch of epoch {self.epoch}, but the camera's lease is "
                f"at epoch {current} (it runs elsewhere now)"
            )


class FencedStore:
    """A camera writer's view of the event store: every batch checked against its lease.

    Everything but ``apply_batch`` passes through (media links, reads)."""

    def __init__(self, store: PostgresEventStore, camera: str, epoch: int) -> None:
        self._store = store
        self.camera = camera
        self.epoch = epoch

    def apply_batch(
        self, transitions: Iterable[Any], traffic: Iterable[Any], *, batch_id: str | None = None
    ) -> bool:
        epoch = epoch_of_batch(batch_id) if batch_id is not None else None
        if epoch is None:
            raise FencedOff(f"camera {self.camera!r}: batch {batch_id!r} carries no epoch")
        return self._store.apply_batch(
            transitions, traffic, batch_id=batch_id, fence=LeaseFence(self.camera, epoch)
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def _now_us() -> int:
    return time.time_ns() // 1000
