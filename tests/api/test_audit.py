"""The audit log: hash chain, tamper detection, who/what/when/where of each step, CSV export."""

from __future__ import annotations

import csv
import io
import sqlite3

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.audit import AuditLog
from tests.api.security_backends import SecurityBackend
from tests.api.support import Parts, make_event, start


@pytest.fixture
def audit(security_backend: SecurityBackend) -> AuditLog:
    log = AuditLog(security_backend.new())
    for i in range(5):
        log.record(f"user{i}", "review.acknowledge", f"item{i}", address="127.0.0.1", note=f"n{i}")
    return log


def test_chain_verifies_and_rows_link(audit: AuditLog) -> None:
    result = audit.verify()
    assert result.ok and result.rows == 5 and result.head == audit.records(limit=1)[0].hash
    rows = list(audit.all())
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]


def test_the_database_refuses_edits(audit: AuditLog, security_backend: SecurityBackend) -> None:
    statements = ["UPDATE audit SET actor = 'x' WHERE seq = 2", "DELETE FROM audit WHERE seq = 2"]
    if security_backend.kind == "postgres":
        statements.append("TRUNCATE audit")  # skips row triggers: refused by its own
    for sql in statements:
        with pytest.raises((sqlite3.IntegrityError, psycopg.errors.RaiseException), match="append-only"):
            security_backend.raw(audit.db, sql)
    assert audit.verify().rows == 5


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        ("UPDATE audit SET actor = 'someone else' WHERE seq = 3", "row 3 was changed"),
        ("UPDATE audit SET detail = '{}' WHERE seq = 1", "row 1 was changed"),
        ("DELETE FROM audit WHERE seq = 2", "row 2 is missing"),
        ("DELETE FROM audit WHERE seq = 1", "row 1 is missing"),
    ],
)
def test_verify_finds_an_edited_or_deleted_row(
    audit: AuditLog, security_backend: SecurityBackend, sql: str, problem: str
) -> None:
    security_backend.tamper(audit.db, sql)
    result = audit.verify()
    assert not result.ok and problem in (result.problem or "")


def test_a_rehashed_edit_still_breaks_the_next_link(
    audit: AuditLog, security_backend: SecurityBackend
) -> None:
    # Editing a row and recomputing its own hash is not enough: the next row names the old hash.
    from api.audit.log import _row_hash

    r = audit.db.read("SELECT * FROM audit WHERE seq = 2")[0]
    forged = _row_hash(
        r["prev_hash"], 2, r["ts_us"], "mallory", r["action"], r["target"], r["detail"], r["address"]
    )
    security_backend.tamper(audit.db, f"UPDATE audit SET actor = 'mallory', hash = '{forged}' WHERE seq = 2")
    result = audit.verify()
    assert not result.ok and result.problem == "row 3 does not follow row 2"


def test_service_actions_are_audited_and_exported(client: TestClient, parts: Parts) -> None:
    parts.store.apply(start(make_event(1)))
    item = parts.security.review.ingest(start(make_event(1)))
    assert client.post(f"/review/items/{item}/acknowledge").status_code == 200
    assert (
        client.post(f"/review/items/{item}/comments", json={"text": "=cmd|'/c calc'!A1"}).status_code == 200
    )
    assert client.post(
        f"/review/items/{item}/resolve", json={"resolution": "false_alarm", "note": "mèo"}
    ).is_success
    rows = client.get("/audit").json()["items"]
    actions = [r["action"] for r in rows]
    assert actions[:4] == ["review.resolve", "review.comment", "review.acknowledge", "login"]
    resolve = rows[0]
    assert resolve["actor"] == "admin" and resolve["target"] == item and resolve["address"] == "testclient"
    assert resolve["detail"] == {"resolution": "false_alarm", "note": "mèo"}
    r = client.get("/audit.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(r.text)))
    assert table[0][:4] == ["seq", "time", "actor", "action"]
    assert len(table) == len(rows) + 2 and table[-1][3] == "audit.export"  # the export is logged first
    assert not any(cell.startswith(("=", "+", "@")) for row in table for cell in row)  # no live formula
    assert client.get("/audit", params={"action": "login"}).json()["items"][0]["actor"] == "admin"
    # No route changes the log.
    spec = client.get("/openapi.json").json()["paths"]
    assert set(spec["/audit"]) == {"get"} and set(spec["/audit.csv"]) == {"get"}
    assert parts.security.audit.verify().ok
