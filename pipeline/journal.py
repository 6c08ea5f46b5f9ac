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
    """Append-only batches on disk with a stored read offset. Not thread-safe: the sink locks."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "journal.jsonl"
        self._offset_path = directory / "journal.offset"
        self._file = self.path.open("a+b")
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
        return self.path.stat().st_size

    @property
    def unread_bytes(self) -> int:
        return self.size - self.offset

    def append(self, batch: Batch) -> None:
        self._file.seek(0, os.SEEK_END)
        self._file.write(batch.to_line().encode())
        self._file.flush()  # in the OS's hands: survives the process being killed
        self.pending += 1

    def read(self, max_batches: int) -> tuple[list[Batch], int, int]:
        """Up to ``max_batches`` batches from the stored offset, the offset after them and the
        number of lines they took (an unreadable line is skipped, logged and counted).

        A torn last line (the process died while appending) is left for later: it
        completes if the append does, and is skipped at the next start if not.
        """
        self._file.seek(self.offset)
        batches: list[Batch] = []
        end = self.offset
        lines = 0
        for raw in self._file:
            if not raw.endswith(b"\n"):
                break
            try:
                batches.append(Batch.from_line(raw.decode()))
            except (ValueError, KeyError) as exc:
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
            self._file.truncate(0)
            self.offset = 0
            self.pending = 0
        tmp = self._offset_path.with_suffix(".tmp")
        tmp.write_text(str(self.offset))
        os.replace(tmp, self._offset_path)

    def close(self) -> None:
        self._file.close()

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
        with self.path.open("rb") as f:
            f.seek(offset)
            return sum(1 for line in f if line.endswith(b"\n"))
