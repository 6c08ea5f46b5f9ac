"""Several API processes on one security database (SQLite file or PostgreSQL): accounts, sessions, keys,
login limits, reports and one audit chain shared by all."""

from __future__ import annotations

import sqlite3
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from api.auth import Role, ScopeIndex
from api.auth.config import AuthConfig
from api.auth.db_postgres import to_psycopg
from api.auth.migrations import latest, migrate
from api.auth.security import ADMIN_PASSWORD_ENV, Security
from api.reports.store import ReportStore
from events.storage.store import StorageError
from tests.api.security_backends import SecurityBackend
from tests.api.support import PASSWORD, T0

CONFIG = AuthConfig(max_failures_per_account=3, max_failures_per_address=100)


def _two_processes(backend: SecurityBackend) -> tuple[Security, Security]:
    first = backend.new()
    return Security.open(first, ScopeIndex(), CONFIG), Security.open(
        backend.again(first), ScopeIndex(), CONFIG
    )


def test_accounts_sessions_and_keys_are_shared(security_backend: SecurityBackend) -> None:
    a, b = _two_processes(security_backend)
    a.auth.add_user("Op1", PASSWORD, Role.OPERATOR, ["kp1"])
    user = b.auth.check_password("op1", PASSWORD)  # names compare without case on both backends
    assert user is not None and user.username == "Op1" and user.scopes == ["kp1"]
    with pytest.raises(ValueError, match="exists"):
        b.auth.add_user("OP1", PASSWORD, Role.VIEWER, ["kp1"])
    token_a, _ = a.auth.new_session(user, ttl_s=60)
    token_b, _ = b.auth.new_session(user, ttl_s=60)
    for token in (token_a, token_b):
        for process in (a, b):
            principal = process.auth.session_principal(token)
            assert principal is not None and principal.name == "Op1"
    # A password change through one process ends every session, in both.
    b.auth.set_password("op1", "another-password-9")
    assert all(p.auth.session_principal(t) is None for p in (a, b) for t in (token_a, token_b))
    assert a.auth.check_password("op1", "another-password-9") is not None
    key_id, key = a.auth.add_key("nvr", Role.VIEWER, ["kp1"])
    principal = b.auth.key_principal(key)
    assert principal is not None and principal.scopes == ("kp1",)
    assert b.auth.revoke_key(key_id) and a.auth.key_principal(key) is None
    assert [k["revoked"] for k in a.auth.api_keys()] == [True]
    # Rights changed in one process end the sessions everywhere; a session ended in one is gone in both.
    token, _ = a.auth.new_session(user, ttl_s=60)
    changed = b.auth.update_user("OP1", role=Role.VIEWER, unredacted=True)
    assert changed.role is Role.VIEWER and changed.unredacted and a.auth.session_principal(token) is None
    token, _ = a.auth.new_session(user, ttl_s=60)
    principal = b.auth.session_principal(token)
    assert principal is not None and principal.session_id is not None
    b.auth.end_session(principal.session_id)
    assert a.auth.session_principal(token) is None
    assert a.auth.count_users() == 1 and [u.username for u in b.auth.users()] == ["Op1"]
    assert b.auth.user_by_id(user.id) == a.auth.user("OP1")
    b.auth.update_user("op1", disabled=True)
    assert a.auth.check_password("op1", "another-password-9") is None
    a.close()
    b.close()


def test_failed_logins_count_across_processes(security_backend: SecurityBackend) -> None:
    a, b = _two_processes(security_backend)
    a.limiter.failed("Op1", "10.0.0.1")
    b.limiter.failed("op1", "10.0.0.2")
    assert a.limiter.blocked("op1", "10.0.0.3") == 0 and b.limiter.blocked("op1", "10.0.0.3") == 0
    a.limiter.failed("OP1", "10.0.0.3")  # the third, through the first process again
    for process in (a, b):
        wait = process.limiter.blocked("op1", "10.0.0.4")
        assert 0 < wait <= CONFIG.login_window_s
    assert a.limiter.blocked("op2", "10.0.0.4") == 0  # other accounts are not held up
    b.limiter.succeeded("op1")
    assert a.limiter.blocked("op1", "10.0.0.4") == 0
    a.close()
    b.close()


def test_concurrent_appends_from_two_processes_keep_one_chain(security_backend: SecurityBackend) -> None:
    a, b = _two_processes(security_backend)
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def append(process: Security, name: str) -> None:
        start.wait()
        try:
            for i in range(40):
                process.audit.record(name, "test.append", f"row{i}")
        except BaseException as exc:  # reported below: a thread's exception is otherwise lost
            errors.append(exc)

    threads = [
        threading.Thread(target=append, args=(process, f"{tag}{n}"))
        for tag, process in (("a", a), ("b", b))
        for n in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    for process in (a, b):
        result = process.audit.verify()
        assert result.ok and result.rows == 160, result
    rows = list(a.audit.all())
    assert [r.seq for r in rows] == list(range(1, 161))
    assert {r.actor for r in rows} == {"a0", "a1", "b0", "b1"}
    a.close()
    b.close()


def test_reports_store_on_both_backends(security_backend: SecurityBackend) -> None:
    db = security_backend.new()
    store = ReportStore(db)
    contact = {"name": "Lan", "email": None, "phone": "0901"}
    common = {"lat": 10.77, "lon": 106.7, "address": "12 Lê Lợi", "contact": contact, "attributes": {}}
    first = store.create(
        token_hash="t1", service_code="security", description="xe lạ", khu_pho="kp1", ward="w1",
        contact_key="c1", routed_note="kp1", **common,
    )  # fmt: skip
    second = store.create(
        token_hash="t2", service_code="lighting", description="đèn hỏng", khu_pho=None, ward="w2",
        contact_key="c1", routed_note=None, **common,
    )  # fmt: skip
    assert second.id > first.id and first.state == "assigned" and second.state == "received"
    store.set_media(first.id, "reports/1.jpg", "abc.jpg")
    assert store.by_media("abc.jpg") == store.by_token("t1") == store.get(first.id)
    assert store.get(first.id).media_key == "reports/1.jpg"  # type: ignore[union-attr]
    assert store.open_for_contact("c1") == 2
    # The ward queue (no khu phố) and empty lists of places, ids or codes.
    assert [r.id for r in store.search(khu_pho=[], wards=["w2"])] == [second.id]
    assert [r.id for r in store.search(khu_pho=["kp1"], wards=[])] == [first.id]
    assert store.search(ids=[]) == [] and store.search(service_codes=[]) == []
    changed = store.change(second.id, kind="hidden", actor="op1", public=False, hidden=True)
    assert changed.hidden and store.open_for_contact("c1") == 1
    resolved = store.change(
        first.id, kind="resolved", actor="op1", public=True, state="resolved", public_note="đã xử lý"
    )
    assert resolved.closed is not None and resolved.status_notes == "đã xử lý"
    assert [u.kind for u in store.updates(first.id, public_only=True)] == ["received", "routed", "resolved"]
    since = T0 - timedelta(days=365 * 10)
    assert {u.report_id for u in store.public_updates(since=since, until=None)} == {first.id}
    assert store.public_updates(since=since, until=None, report_ids=[]) == []
    assert store.add_evidence(first.id, "ev1", "op1", was_locked=False)
    assert not store.add_evidence(first.id, "ev1", "op1", was_locked=True)  # linked already
    assert store.evidence_due(closed_before_us=2**62)[0][0] == first.id
    assert store.evidence_still_needed("ev1", closed_before_us=0)  # closed after the cut-off
    assert not store.evidence_still_needed("ev1", closed_before_us=2**62)
    store.mark_released(first.id, "ev1")
    assert store.evidence(first.id)[0].released and not store.was_locked_before("ev1")
    assert store.remove_evidence(first.id, "ev1") is not None and store.evidence(first.id) == []


def test_a_database_written_by_a_newer_khupho_is_refused(security_backend: SecurityBackend) -> None:
    db = security_backend.new()
    assert migrate(db) == latest(db.dialect) >= 5  # applied once, a second time is a no-op
    security_backend.raw(db, "INSERT INTO security_migrations VALUES (999, 'future', 0)")
    with pytest.raises(StorageError, match="schema version 999, newer than this khupho's"):
        security_backend.again(db)


def test_a_sqlite_file_from_before_the_migrations_keeps_its_rows(tmp_path: Path) -> None:
    # The tables as each store created them before the migrations, with an account and an audit row.
    path = tmp_path / "events.db"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT NOT NULL UNIQUE COLLATE NOCASE,
            password_hash TEXT NOT NULL, role TEXT NOT NULL, scopes TEXT NOT NULL,
            unredacted INTEGER NOT NULL DEFAULT 0, disabled INTEGER NOT NULL DEFAULT 0,
            must_change INTEGER NOT NULL DEFAULT 0, created_us INTEGER NOT NULL);
        CREATE TABLE audit (seq INTEGER PRIMARY KEY, ts_us INTEGER NOT NULL, actor TEXT NOT NULL,
            action TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL, address TEXT NOT NULL,
            prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
        CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
        CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
        """
    )
    old.close()
    security = Security.open(path, ScopeIndex(), CONFIG)
    security.auth.add_user("op1", PASSWORD, Role.OPERATOR, ["kp1"])
    security.audit.record("cli", "user.add", "op1")
    security.close()
    again = Security.open(path, ScopeIndex(), CONFIG)
    assert again.auth.check_password("op1", PASSWORD) is not None and again.audit.verify().rows == 1
    assert [r["version"] for r in again.db.read("SELECT version FROM security_migrations")] == [1, 2, 3, 4, 5]
    again.close()


def test_placeholders_become_psycopg_ones_outside_quoted_strings() -> None:
    sql = "SELECT ? , '?' , 'it''s ?' , x % 2 FROM t WHERE a = ? AND b LIKE '%?'"
    assert to_psycopg(sql) == "SELECT %s , '?' , 'it''s ?' , x %% 2 FROM t WHERE a = %s AND b LIKE '%%?'"


def test_processes_starting_together_make_one_first_administrator(
    security_backend: SecurityBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ADMIN_PASSWORD_ENV, raising=False)
    a, b = _two_processes(security_backend)
    start = threading.Barrier(2)
    results: list[object] = []

    def first_start(process: Security) -> None:
        start.wait()
        try:
            results.append(process.ensure_admin())
        except BaseException as exc:  # reported below
            results.append(exc)

    threads = [threading.Thread(target=first_start, args=(p,)) for p in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    passwords = [r for r in results if isinstance(r, str)]
    assert len(results) == 2 and len(passwords) == 1 and None in results, results
    assert a.auth.count_users() == 1 and b.auth.check_password("admin", passwords[0]) is not None
    assert [r.action for r in a.audit.all()] == ["user.add"]
    a.close()
    b.close()
