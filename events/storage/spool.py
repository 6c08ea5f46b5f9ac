"""The upload spool: media (snapshots, clips) that cannot be uploaded now wait on local disk.

``UploadSpool.put`` tries the object store at once. If that fails (S3 down, a
network cut, a wrong clock) the bytes and what to do with them are written to
the spool folder and a thread of its own retries them, oldest first, with
exponential backoff and jitter; camera threads and the snapshot encoder never
sleep on it. After an upload the media is *linked* (``on_uploaded``: the
event's snapshot or clip key recorded in the event store), so the API never
points at an object that is not there. A link that fails keeps the entry too.

Idempotent: a spool entry is named after its object key, so the same media
submitted again replaces the waiting copy, and retrying an upload that already
reached the store writes the same key again (never a second object). The spool
survives restarts: entries found at start-up are retried. It has a size cap;
when it is reached the oldest non-evidence media go first (then, with an
error, the oldest evidence), counted and logged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from events.storage.objects import ObjectStore
from events.storage.store import EventStore, StorageError

log = logging.getLogger(__name__)


class UploadedHook(Protocol):
    """Links uploaded media to its event; raising keeps the entry for a later retry."""

    def __call__(self, *, key: str, link: Mapping[str, Any]) -> None: ...


def link_to_store(store: EventStore) -> UploadedHook:
    """The usual link: record a snapshot's or a clip's key on its event."""

    def link(*, key: str, link: Mapping[str, Any]) -> None:
        kind = link["kind"]
        if kind == "report_photo":
            return  # a resident's photo: its report holds the key from the start (no event)
        event_id = link["event_id"]
        if kind == "snapshot":
            store.set_snapshot(event_id, key, float(link["score"]))
        elif kind == "clip":
            store.set_clip(event_id, key)
        elif kind == "original":
            pass  # an unredacted snapshot: found by its key, beside the redacted one it belongs to
        else:
            raise ValueError(f"unknown media kind {kind!r} for {key}")

    return link


@dataclass(frozen=True, slots=True)
class SpoolStats:
    uploaded: int = 0  # media stored and linked (at once or from the spool)
    spooled: int = 0  # media that went to the spool
    retried: int = 0  # upload attempts from the spool
    evicted: int = 0  # spooled media deleted because the spool was full
    pending: int = 0  # entries in the spool now
    pending_bytes: int = 0


@dataclass(slots=True)
class _Entry:
    name: str
    key: str
    content_type: str
    metadata: dict[str, str]
    link: dict[str, Any]
    evidence: bool
    created: float
    size: int
    next_try: float = 0.0  # time.monotonic() of the next upload attempt
    attempts: int = 0


class UploadSpool:
    """Object-store uploads that survive outages and restarts; see the module docstring."""

    def __init__(
        self,
        objects: ObjectStore,
        directory: Path,
        *,
        on_uploaded: UploadedHook,
        max_bytes: int,
        retry_initial_s: float,
        retry_max_s: float,
    ) -> None:
        self.objects = objects
        self.directory = directory
        self.on_uploaded = on_uploaded
        self.max_bytes = max_bytes
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        directory.mkdir(parents=True, exist_ok=True)
        self._cond = threading.Condition()
        self._entries: dict[str, _Entry] = {}
        self._counts = dict.fromkeys(("uploaded", "spooled", "retried", "evicted"), 0)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_full_log = 0.0
        self._load()

    # -- producers -------------------------------------------------------------------------------------

    def put(
        self,
        *,
        key: str,
        data: bytes,
        content_type: str,
        metadata: Mapping[str, str],
        link: Mapping[str, Any],
        evidence: bool = True,
    ) -> bool:
        """Upload and link now if the stores answer; else keep it in the spool. True if done now."""
        name = hashlib.sha256(key.encode()).hexdigest()[:32]
        with self._cond:
            # While anything waits, the store is taken to be down: straight to the spool (the retry
            # thread probes it), so the encoder does not wait out an outage once per picture, and
            # nothing overtakes what waits (an older copy of this very key, say).
            waiting = bool(self._entries)
        if not waiting:
            try:
                self.objects.put(key, data, content_type, dict(metadata))
                self.on_uploaded(key=key, link=link)
            except (StorageError, OSError) as exc:
                log.warning("upload of %s failed (%s): kept in the spool for retry", key, exc)
            else:
                with self._cond:
                    self._counts["uploaded"] += 1
                return True
        self._spool(name, key, data, content_type, metadata, link, evidence)
        return False

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> UploadSpool:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="upload-spool", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float) -> None:
        """Try what is spooled once more (within ``timeout``), then stop; the rest stays on disk."""
        started = time.monotonic()
        with self._cond:
            for entry in self._entries.values():
                entry.next_try = 0.0
        if self._thread is not None:
            self.drain(0.8 * timeout)
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(max(0.1, timeout - (time.monotonic() - started)))
        if self._entries:
            log.warning(
                "%d media still in the upload spool %s: uploaded at the next start",
                len(self._entries),
                self.directory,
            )

    def drain(self, timeout: float) -> bool:
        """Wait until the spool is empty; False on timeout."""
        with self._cond:
            self._cond.notify_all()
            return self._cond.wait_for(lambda: not self._entries, timeout)

    def stats(self) -> SpoolStats:
        with self._cond:
            return SpoolStats(
                **self._counts,
                pending=len(self._entries),
                pending_bytes=sum(e.size for e in self._entries.values()),
            )

    # -- spool on disk ---------------------------------------------------------------------------------

    def _spool(
        self,
        name: str,
        key: str,
        data: bytes,
        content_type: str,
        metadata: Mapping[str, str],
        link: Mapping[str, Any],
        evidence: bool,
    ) -> None:
        entry = _Entry(name, key, content_type, dict(metadata), dict(link), evidence, time.time(), len(data))
        description = json.dumps(
            {
                "key": key,
                "content_type": content_type,
                "metadata": entry.metadata,
                "link": entry.link,
                "evidence": evidence,
                "created": entry.created,
            }
        ).encode()
        with self._cond:  # the retry thread never sees half an entry, nor removes a newer one
            # Bytes first, then the description: bytes without a description are an unfinished write.
            _write_atomic(self.directory / f"{name}.data", data)
            _write_atomic(self.directory / f"{name}.json", description)
            old = self._entries.get(name)
            if old is not None:
                entry.created = old.created  # keeps its place in line
            self._entries[name] = entry
            self._counts["spooled"] += 1
            self._evict_locked()
            self._cond.notify_all()

    def _load(self) -> None:
        for meta in sorted(self.directory.glob("*.json")):
            name = meta.stem
            data = self.directory / f"{name}.data"
            try:
                doc = json.loads(meta.read_text())
                size = data.stat().st_size
                self._entries[name] = _Entry(
                    name,
                    doc["key"],
                    doc["content_type"],
                    doc["metadata"],
                    doc["link"],
                    bool(doc["evidence"]),
                    float(doc["created"]),
                    size,
                )
            except (OSError, ValueError, KeyError) as exc:
                log.error("upload spool entry %s is damaged and is removed: %s", meta, exc)
                self._remove(name)
        for orphan in self.directory.glob("*.data"):
            if orphan.stem not in self._entries:
                orphan.unlink(missing_ok=True)  # bytes whose description was never written
        if self._entries:
            log.warning(
                "upload spool %s holds %d media from before: retrying them",
                self.directory,
                len(self._entries),
            )

    def _evict_locked(self) -> None:
        total = sum(e.size for e in self._entries.values())
        if total <= self.max_bytes:
            return
        order = sorted(self._entries.values(), key=lambda e: (e.evidence, e.created))
        evicted = []
        for entry in order:
            if total <= self.max_bytes:
                break
            total -= entry.size
            evicted.append(entry)
            del self._entries[entry.name]
            self._remove(entry.name)
        self._counts["evicted"] += len(evicted)
        evidence = sum(e.evidence for e in evicted)
        now = time.monotonic()
        if evidence or now - self._last_full_log > 10:
            self._last_full_log = now
            (log.error if evidence else log.warning)(
                "upload spool %s full (%d MB cap): deleted %d waiting media (%d of them evidence): %s",
                self.directory,
                self.max_bytes >> 20,
                len(evicted),
                evidence,
                ", ".join(e.key for e in evicted[:5]),
            )

    def _remove(self, name: str) -> None:
        for suffix in (".json", ".data"):
            (self.directory / f"{name}{suffix}").unlink(missing_ok=True)

    # -- retry thread ----------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                self._cond.wait_for(lambda: self._entries or self._stop.is_set())
                if self._stop.is_set():
                    return
                # The entry due first; each has its own backoff, so one that keeps failing (a key
                # the store refuses) never holds up the others.
                entry = min(self._entries.values(), key=lambda e: (e.next_try, e.created))
                wait = entry.next_try - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)  # woken early by a new entry, drain() or close()
                    continue
            self._retry(entry)

    def _retry(self, entry: _Entry) -> None:
        with self._cond:
            if self._entries.get(entry.name) is not entry:
                return  # replaced by a newer copy or evicted meanwhile
            self._counts["retried"] += 1
            try:
                data = (self.directory / f"{entry.name}.data").read_bytes()
            except FileNotFoundError:
                log.error("upload spool entry for %s lost its bytes: dropped", entry.key)
                del self._entries[entry.name]
                self._remove(entry.name)
                return
        try:
            self.objects.put(entry.key, data, entry.content_type, entry.metadata)
            self.on_uploaded(key=entry.key, link=entry.link)
        except (StorageError, OSError) as exc:
            entry.attempts += 1
            # Backoff with jitter, so many services behind one outage do not retry in step.
            delay = min(self.retry_max_s, self.retry_initial_s * 2 ** (entry.attempts - 1))
            entry.next_try = time.monotonic() + delay * random.uniform(0.8, 1.2)
            log.debug("retry %d of %s failed: %s", entry.attempts, entry.key, exc)
            return
        except Exception:
            log.exception("upload spool entry for %s cannot be linked: set aside", entry.key)
            with self._cond:
                self._set_aside(entry)
            return
        with self._cond:
            if self._entries.get(entry.name) is entry:  # not replaced by a newer copy meanwhile
                del self._entries[entry.name]
                self._remove(entry.name)
            self._counts["uploaded"] += 1
            self._cond.notify_all()
        log.info("uploaded %s from the spool", entry.key)

    def _set_aside(self, entry: _Entry) -> None:
        aside = self.directory / "rejected"
        aside.mkdir(exist_ok=True)
        for suffix in (".json", ".data"):
            path = self.directory / f"{entry.name}{suffix}"
            if path.exists():
                os.replace(path, aside / path.name)
        self._entries.pop(entry.name, None)
        self._cond.notify_all()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
