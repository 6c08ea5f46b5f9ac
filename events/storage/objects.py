"""The object store interface (snapshots, clips) and the local-directory backend.

Keys are relative, ``/``-separated paths such as ``snapshots/cam1/2024/05/01/abc.jpg``,
checked the same way by every backend (:func:`check_key`) so a key that works on
disk also works on S3 and no key can escape the store's root.

Metadata is a small ``str -> str`` map stored with the object (S3 user metadata,
a sidecar JSON file locally). S3 carries it in HTTP headers, so keys are limited
to lower-case letters, digits, ``-`` and ``_``, and values to printable ASCII;
:func:`check_metadata` enforces that for every backend so code tested locally
does not fail on S3.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

from events.storage.store import StorageError

_CHUNK = 64 * 1024
_META_SUFFIX = ".meta.json"
_META_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_META_VALUE = re.compile(r"^[\x20-\x7e]{0,1024}$")


class ObjectNotFound(StorageError):
    """No object under the key."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    content_type: str
    metadata: dict[str, str] = field(default_factory=dict)


def check_key(key: str) -> str:
    """The key if it is a safe relative path; ``ValueError`` naming the problem otherwise."""
    if not isinstance(key, str) or not key:
        raise ValueError("object key must be a non-empty string")
    if "\x00" in key or "\\" in key:
        raise ValueError(f"object key {key!r} contains a NUL or a backslash")
    if key.startswith("/") or re.match(r"^[A-Za-z]:", key):
        raise ValueError(f"object key {key!r} is absolute; keys are relative to the store")
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"object key {key!r} has an empty, '.' or '..' segment")
    if key.endswith(_META_SUFFIX):
        raise ValueError(f"object key {key!r} ends with {_META_SUFFIX!r}, reserved for metadata")
    if len(key.encode()) > 1024:
        raise ValueError("object key is longer than 1024 bytes")
    return key


def check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """A plain dict of the metadata if every entry can travel as an S3 header; ``ValueError`` otherwise."""
    out: dict[str, str] = {}
    for k, v in (metadata or {}).items():
        if not isinstance(k, str) or not _META_KEY.match(k):
            raise ValueError(f"metadata key {k!r}: use lower-case letters, digits, '-' and '_'")
        if not isinstance(v, str) or not _META_VALUE.match(v):
            raise ValueError(f"metadata value for {k!r} must be printable ASCII up to 1024 characters")
        out[k] = v
    return out


class ObjectStore(ABC):
    """Where snapshot JPEGs (and later clips) are kept."""

    @abstractmethod
    def put(
        self,
        key: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Store ``data`` under ``key``, replacing any object there; atomic for readers.

        Raises :class:`StorageError` when the object could not be stored (after the
        backend's retries): nothing is dropped silently, the caller decides to spool,
        retry later or count the loss.
        """

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The object's bytes; :class:`ObjectNotFound` if there is none."""

    @abstractmethod
    def open(self, key: str, chunk_size: int = _CHUNK) -> Iterator[bytes]:
        """The object's bytes in chunks, for streaming a response.

        :class:`ObjectNotFound` is raised by this call, not by the first ``next()``;
        closing the iterator early releases the file or connection.
        """

    def open_range(self, key: str, start: int, length: int, chunk_size: int = _CHUNK) -> Iterator[bytes]:
        """``length`` bytes of the object from byte ``start`` (fewer at its end), in chunks, for HTTP
        range requests; raises like :meth:`open`. This default skips through :meth:`open`;
        backends that can seek do better."""
        return _slice(self.open(key, chunk_size), start, length)

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """Size, content type and metadata; :class:`ObjectNotFound` if there is no object."""

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except ObjectNotFound:
            return False
        return True

    @abstractmethod
    def presigned_url(self, key: str, expires: timedelta = timedelta(hours=1)) -> str | None:
        """A time-limited GET link clients can follow, or ``None`` when the backend has none (local)."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; removing a missing object is not an error."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class LocalObjectStore(ObjectStore):
    """Objects as files under ``root``; metadata and content type in a ``<file>.meta.json`` sidecar.

    Writes go to a temporary file in the target directory and are renamed into
    place, so a reader sees the old object or the new one, never a torn one.
    ``fsync=True`` also survives power loss, at a cost per write.
    """

    def __init__(self, root: str | Path, *, fsync: bool = False) -> None:
        self.root = Path(root).resolve()
        self.fsync = fsync
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create object store directory {self.root}: {exc}") from exc
        if not os.access(self.root, os.W_OK):
            raise StorageError(f"object store directory {self.root} is not writable")

    def __repr__(self) -> str:
        return f"LocalObjectStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        path = self.root.joinpath(*check_key(key).split("/"))
        # A symlink inside the root could still point outside it.
        if not path.resolve().is_relative_to(self.root):
            raise ValueError(f"object key {key!r} resolves outside the store")
        return path

    def _write_atomic(self, path: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put(
        self,
        key: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        path = self._path(key)
        meta = {"content_type": content_type, "metadata": check_metadata(metadata)}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Sidecar first: a reader that sees the new data also sees its metadata.
            self._write_atomic(path.with_name(path.name + _META_SUFFIX), json.dumps(meta).encode())
            self._write_atomic(path, bytes(data))
        except OSError as exc:
            raise StorageError(f"cannot write object {key!r} under {self.root}: {exc}") from exc

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectNotFound(f"no object {key!r} under {self.root}") from exc
        except OSError as exc:
            raise StorageError(f"cannot read object {key!r} under {self.root}: {exc}") from exc

    def _open_file(self, key: str) -> BinaryIO:
        path = self._path(key)
        try:
            return path.open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectNotFound(f"no object {key!r} under {self.root}") from exc
        except OSError as exc:
            raise StorageError(f"cannot read object {key!r} under {self.root}: {exc}") from exc

    def open(self, key: str, chunk_size: int = _CHUNK) -> Iterator[bytes]:
        return _chunks(self._open_file(key), chunk_size)

    def open_range(self, key: str, start: int, length: int, chunk_size: int = _CHUNK) -> Iterator[bytes]:
        return _chunks(self._open_file(key), chunk_size, start, length)

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            size = path.stat().st_size
            if not path.is_file():
                raise FileNotFoundError(path)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise ObjectNotFound(f"no object {key!r} under {self.root}") from exc
        try:
            meta = json.loads(path.with_name(path.name + _META_SUFFIX).read_bytes())
        except (OSError, ValueError):
            meta = {}  # an object written by hand, without a sidecar
        return ObjectInfo(
            key=key,
            size=size,
            content_type=meta.get("content_type", "application/octet-stream"),
            metadata=dict(meta.get("metadata", {})),
        )

    def presigned_url(self, key: str, expires: timedelta = timedelta(hours=1)) -> str | None:
        return None

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
            path.with_name(path.name + _META_SUFFIX).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot delete object {key!r} under {self.root}: {exc}") from exc


def _chunks(f: BinaryIO, chunk_size: int, start: int = 0, length: int | None = None) -> Iterator[bytes]:
    with f:
        if start:
            f.seek(start)
        left = length
        while left is None or left > 0:
            chunk = f.read(chunk_size if left is None else min(chunk_size, left))
            if not chunk:
                return
            if left is not None:
                left -= len(chunk)
            yield chunk


def _slice(chunks: Iterator[bytes], start: int, length: int) -> Iterator[bytes]:
    """Bytes ``start`` to ``start + length`` of a chunk stream, reading no further than needed."""
    pos = 0
    try:
        for chunk in chunks:
            end = pos + len(chunk)
            if end > start:
                piece = chunk[max(0, start - pos) : start + length - pos]
                if piece:
                    yield piece
            pos = end
            if pos >= start + length:
                return
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
