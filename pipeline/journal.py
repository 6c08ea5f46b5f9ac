"""The writer's on-disk overflow: batches of transitions and traffic counts that could not wait in memory.

One append-only file of JSON lines (``journal.jsonl``) and the offset up to which
it has been stored (``journal.offset``, replaced atomically). Appends come from
camera threads, reads from the writer thread; the sink serialises both. A
process killed at any point loses nothing that was appended: at the next start
the file is read again from the stored offset, and batch ids make a batch that
was stored just before the offset moved a no-op (``EventStore.apply_batch``).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from events.model import EventTransition, TrafficCount

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Batch:
    """What one ``EventSink.publish`` call hands over, minus the pictures (snapshots go their own way)."""

    id: str
    created: float  # time.time() when published: the age of the oldest unwritten batch comes from it
    transitions: list[EventTransition] = field(default_factory=list)
    traffic: list[TrafficCount] = field(default_factory=list)

    def to_line(self) -> str:
        return (
            json.dumps(
                {
                    "id": self.id,
                    "created": self.created,
                    "transitions": [t.model_dump(mode="json") for t in self.transitions],
                    "traffic": [c.model_dump(mode="json") for c in self.traffic],
                },
                separators=(",", ":"),
            )
            + "\n"
        )

    @classmethod
    def from_line(cls, line: str) -> Batch:
        doc = json.loads(line)
        return cls(
            id=doc["id"],
            created=float(doc["created"]),
            transitions=[EventTransition.model_validate(t) for t in doc["transitions"]],
            traffic=[TrafficCount.model_validate(c) for c in doc["traffic"]],
        )


class Journal:
    """Append-only batches on disk with a stored read offset. Not thread-safe: the sink serialises
    appends, advances and rewrites; reads (the writer thread's) use their own file handle."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "journal.jsonl"
        self._offset_path = directory / "journal.offset"
        self._file: BinaryIO | None = None
        self._cut_torn_tail()
        self.offset = self._read_offset()
        size = self.size
        if self.offset > size:
            log.error(
                "journal offset %d past the end of %s (%d bytes): reading it again",
                self.offset,
                self.path,
                size,
            )
            self.offset = 0
        self.pending = self._count_lines(self.offset)  # batches appended and not yet stored

    @property
    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    @property
    def unread_bytes(self) -> int:
        return max(0, self.size - self.offset)

    def append(self, batch: Batch) -> None:
        if self._file is None or self._file.closed:
            self._file = self.path.open("ab")
        self._file.write(batch.to_line().encode())
        self._file.flush()  # in the OS's hands: survives the process being killed
        self.pending += 1

    def read(self, max_batches: int, offset: int | None = None) -> tuple[list[Batch], int, int]:
        """Up to ``max_batches`` batches from ``offset`` (the stored one by default), the offset
        after them and the number of lines they took (an unreadable line is skipped, logged and
        counted). A line still being appended (no newline yet) is left for the next read."""
        start = self.offset if offset is None else offset
        batches: list[Batch] = []
        end, lines = start, 0
        try:
            reader = self.path.open("rb")
        except FileNotFoundError:
            return batches, end, lines
        with reader:
            reader.seek(start)
            for raw in reader:
                if not raw.endswith(b"\n"):
                    break
                try:
                    batches.append(Batch.from_line(raw.decode()))
                except (ValueError, KeyError, TypeError) as exc:
                    log.error("journal %s: unreadable batch at byte %d skipped (%s)", self.path, end, exc)
                end += len(raw)
                lines += 1
                if lines >= max_batches:
                    break
        return batches, end, lines

    def advance(self, offset: int, lines: int) -> None:
        """Everything before ``offset`` (``lines`` batches) is stored: remember it; empty the file
        when all of it is read."""
        self.offset = offset
        self.pending = max(0, self.pending - lines)
        if offset >= self.size:
            with self.path.open("ab") as f:
                f.truncate(0)
            self.offset = 0
            self.pending = 0
        self._write_offset()

    def rewrite(self, batches: list[Batch]) -> None:
        """Replace the unread part of the journal with ``batches`` (at shutdown: the queued ones
        before the journaled ones). Written beside and swapped in, so a process killed half way
        keeps either the old journal or the new one, whole."""
        tmp = self.path.with_suffix(".new")
        with tmp.open("wb") as f:
            for batch in batches:
                f.write(batch.to_line().encode())
            f.flush()
            os.fsync(f.fileno())
        if self._file is not None:
            self._file.close()
            self._file = None
        os.replace(tmp, self.path)
        self.offset, self.pending = 0, len(batches)
        self._write_offset()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _write_offset(self) -> None:
        tmp = self._offset_path.with_suffix(".tmp")
        tmp.write_text(str(self.offset))
        os.replace(tmp, self._offset_path)

    def _cut_torn_tail(self) -> None:
        """A process killed mid-append leaves a last line without its newline: cut it off, or the
        next append would be glued to it and lost with it."""
        size = self.size
        if size == 0:
            return
        with self.path.open("r+b") as f:
            f.seek(max(0, size - (1 << 20)))
            tail = f.read()
            if b"\n" in tail:
                keep = size - len(tail) + tail.rfind(b"\n") + 1
            elif len(tail) == size:
                keep = 0  # one torn line and nothing before it
            else:
                return  # no batch is that long: leave it to the reader, which stops at it
            if keep < size:
                log.warning(
                    "journal %s: cut %d bytes of a batch whose append never finished", self.path, size - keep
                )
                f.truncate(keep)

    def _read_offset(self) -> int:
        try:
            return int(self._offset_path.read_text().strip() or 0)
        except FileNotFoundError:
            return 0
        except ValueError:
            log.error(
                "journal offset file %s is damaged: reading the journal from the start", self._offset_path
            )
            return 0

    def _count_lines(self, offset: int) -> int:
        if not self.path.exists():
            return 0
        with self.path.open("rb") as f:
            f.seek(offset)
            return sum(1 for line in f if line.endswith(b"\n"))
