"""Append-only, tamper-evident audit log in the service's database (SQLite or PostgreSQL).

Each row carries ``prev_hash`` (the previous row's hash) and ``hash`` =
SHA-256 over ``prev_hash`` and the row's own fields, so editing a row breaks
its hash and deleting one breaks the next row's link (and the run of sequence
numbers). Triggers refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL;
``api/auth/migrations``); nothing in the service edits rows. An append reads the
head and writes the next row in one write transaction, and writers of one
database take turns (``api.auth.db``), so API processes on several hosts extend
one chain, never fork it. Removing the newest rows cannot be seen from the chain
itself: :meth:`AuditLog.verify` returns the head hash to keep elsewhere
(``khupho audit verify`` prints it).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from api.auth.db import SecurityDb

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditRecord:
    seq: int
    time: datetime
    actor: str
    action: str  # e.g. login, login_failed, review.acknowledge, snapshot.view, snapshot.unredacted
    target: str
    detail: dict[str, Any]
    address: str
    hash: str


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    rows: int
    head: str  # hash of the newest row (keep it elsewhere to detect a cut-off tail)
    problem: str | None = None


def _row_hash(
    prev: str, seq: int, ts_us: int, actor: str, action: str, target: str, detail: str, addr: str
) -> str:
    body = json.dumps([prev, seq, ts_us, actor, action, target, detail, addr], ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()


class AuditLog:
    def __init__(self, db: SecurityDb) -> None:
        self.db = db

    def record(
        self, actor: str, action: str, target: str = "", *, address: str = "", **detail: Any
    ) -> AuditRecord:
        detail_text = json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str)
        ts_us = int(time.time() * 1_000_000)
        with self.db.tx() as c:
            last = c.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (last["seq"] + 1, last["hash"]) if last else (1, GENESIS)
            digest = _row_hash(prev, seq, ts_us, actor, action, target, detail_text, address)
            c.execute(
                "INSERT INTO audit (seq, ts_us, actor, action, target, detail, address, prev_hash, hash)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, ts_us, actor, action, target, detail_text, address, prev, digest),
            )
        return AuditRecord(seq, _time(ts_us), actor, action, target, detail, address, digest)

    def records(
        self,
        *,
        before: int | None = None,
        limit: int = 100,
        action: str | None = None,
        actor: str | None = None,
    ) -> list[AuditRecord]:
        """Newest first; ``before`` is a sequence number (the previous page's last)."""
        where, params = [], []
        if before is not None:
            where.append("seq < ?")
            params.append(before)
        if action:
            where.append("action = ?")
            params.append(action)
        if actor:
            where.append("actor = ?")
            params.append(actor)
        sql = "SELECT * FROM audit" + (" WHERE " + " AND ".join(where) if where else "")
        rows = self.db.read(sql + " ORDER BY seq DESC LIMIT ?", (*params, limit))
        return [_record(r) for r in rows]

    def all(self) -> Iterator[AuditRecord]:
        after = 0
        while True:
            rows = self.db.read("SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT 1000", (after,))
            if not rows:
                return
            for r in rows:
                yield _record(r)
            after = rows[-1]["seq"]

    def verify(self) -> VerifyResult:
        prev, expected_seq, count = GENESIS, 1, 0
        after = 0
        while True:
            rows = self.db.read("SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT 1000", (after,))
            if not rows:
                return VerifyResult(True, count, prev)
            for r in rows:
                if r["seq"] != expected_seq:
                    return VerifyResult(
                        False, count, prev, f"row {expected_seq} is missing (next is {r['seq']})"
                    )
                if r["prev_hash"] != prev:
                    return VerifyResult(
                        False, count, prev, f"row {r['seq']} does not follow row {r['seq'] - 1}"
                    )
                digest = _row_hash(
                    prev,
                    r["seq"],
                    r["ts_us"],
                    r["actor"],
                    r["action"],
                    r["target"],
                    r["detail"],
                    r["address"],
                )
                if digest != r["hash"]:
                    return VerifyResult(False, count, prev, f"row {r['seq']} was changed")
                prev, expected_seq, count = r["hash"], expected_seq + 1, count + 1
            after = rows[-1]["seq"]

    def to_csv(self) -> Iterator[str]:
        """The whole log, oldest first, as CSV text chunks."""
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["seq", "time", "actor", "action", "target", "detail", "address", "hash"])
        for rec in self.all():
            writer.writerow(
                [
                    rec.seq,
                    rec.time.isoformat(),
                    _safe_cell(rec.actor),
                    rec.action,
                    _safe_cell(rec.target),
                    _safe_cell(json.dumps(rec.detail, ensure_ascii=False)),
                    rec.address,
                    rec.hash,
                ]
            )
            if buf.tell() > 64_000:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
        yield buf.getvalue()


def _safe_cell(text: str) -> str:
    # A cell starting with = + - @ runs as a formula in spreadsheets (CSV injection): quote it.
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def _time(ts_us: int) -> datetime:
    return datetime.fromtimestamp(ts_us / 1e6, UTC)


def _record(r: Any) -> AuditRecord:
    return AuditRecord(
        r["seq"],
        _time(r["ts_us"]),
        r["actor"],
        r["action"],
        r["target"],
        json.loads(r["detail"]),
        r["address"],
        r["hash"],
    )
