"""PostgreSQL-only behaviour of the event store: credentials, schema migrations shared by several
processes, and a server that restarts under a running store. The contract every backend shares is in
test_store_contract.py and test_store_lifecycle.py."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from events.model import Event, EventTransition, EventType, Phase, TrafficCount
from events.storage.migrations import latest
from events.storage.postgres import PostgresEventStore
from events.storage.store import StorageError
from tests.conftest_pg import PgServer, remove_postgres, start_postgres

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _start(i: int) -> EventTransition:
    ev = Event(
        id=f"ev{i:04d}",
        camera="cam1",
        rule="gate",
        type=EventType.ZONE_INTRUSION,
        classes=["person"],
        track_ids=[i],
        start_pts=float(i),
        start_time=T0 + timedelta(seconds=i),
    )
    return EventTransition(phase=Phase.START, event=ev)


@pytest.fixture
def schema(postgres: PgServer) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    with postgres.connect() as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def test_wrong_password_is_a_clear_error_without_the_password(postgres: PgServer) -> None:
    secret = "Wr0ng-but-SECRET-" + uuid.uuid4().hex
    with pytest.raises(StorageError) as info:
        PostgresEventStore(**{**postgres.store_options(), "password": secret})  # type: ignore[arg-type]
    message = str(info.value)
    assert f"127.0.0.1:{postgres.port}/postgres" in message
    assert "password authentication failed" in message
    assert secret not in message and secret not in repr(info.value)
    # Raised apart from the driver's exception, so a traceback shows nothing more than the message.
    assert info.value.__cause__ is None and info.value.__context__ is None


def test_newer_schema_is_refused(postgres: PgServer, schema: str) -> None:
    PostgresEventStore(**postgres.store_options(), schema=schema).close()  # type: ignore[arg-type]
    with postgres.connect() as conn:
        conn.execute(f"INSERT INTO {schema}.schema_migrations VALUES (99, 'from_the_future', 0)")
    with pytest.raises(StorageError, match="schema version 99, newer than this khupho's"):
        PostgresEventStore(**postgres.store_options(), schema=schema)  # type: ignore[arg-type]


def test_a_version_1_schema_is_upgraded_in_place(postgres: PgServer, schema: str) -> None:
    store = PostgresEventStore(**postgres.store_options(), schema=schema)  # type: ignore[arg-type]
    store.apply(_start(0))
    store.close()
    with postgres.connect() as conn:  # back to version 1: no clips, no locks
        conn.execute(
            f"DROP TABLE {schema}.clips, {schema}.locks, {schema}.applied_batches, {schema}.cluster_leases"
        )
        conn.execute(f"DROP INDEX {schema}.events_by_end, {schema}.events_by_camera_type")
        conn.execute(f"ALTER TABLE {schema}.events DROP COLUMN feed_seq")
        conn.execute(f"DROP SEQUENCE {schema}.events_feed_seq")
        conn.execute(f"DELETE FROM {schema}.schema_migrations WHERE version > 1")
    upgraded = PostgresEventStore(**postgres.store_options(), schema=schema)  # type: ignore[arg-type]
    try:
        assert upgraded.schema_version == latest("postgres") >= 2
        upgraded.set_clip("ev0000", "clips/x.mp4")
        got = upgraded.get("ev0000")
        assert got is not None and got.clip == "clips/x.mp4"
    finally:
        upgraded.close()


def test_processes_starting_together_migrate_once(postgres: PgServer, schema: str) -> None:
    """Several khupho processes started at once against one empty database (a cluster deploy)."""
    n = 6
    barrier = threading.Barrier(n)
    stores: list[PostgresEventStore] = []
    errors: list[BaseException] = []

    def open_store() -> None:
        barrier.wait()
        try:
            stores.append(PostgresEventStore(**postgres.store_options(), schema=schema))  # type: ignore[arg-type]
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for s in stores:
        s.close()
    assert errors == []
    with postgres.connect() as conn:
        rows = conn.execute(f"SELECT version FROM {schema}.schema_migrations ORDER BY version").fetchall()
    assert [r[0] for r in rows] == list(range(1, latest("postgres") + 1))


def test_a_user_without_create_rights_on_the_database_uses_its_schema(
    postgres: PgServer, schema: str
) -> None:
    """The usual least-privilege setup: a role that owns khupho's schema and nothing more."""
    role, password = f"r_{uuid.uuid4().hex[:12]}", uuid.uuid4().hex
    with postgres.connect() as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        conn.execute(f"CREATE SCHEMA {schema} AUTHORIZATION {role}")
    try:
        options = {**postgres.store_options(), "user": role, "password": password}
        store = PostgresEventStore(**options, schema=schema)  # type: ignore[arg-type]
        store.apply(_start(1))
        assert store.count_events() == 1
        store.close()
    finally:
        with postgres.connect() as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
            conn.execute(f"DROP ROLE {role}")


def test_the_store_fails_fast_while_the_server_is_down_and_reconnects() -> None:
    server = start_postgres()  # a private server: this test stops it
    try:
        store = PostgresEventStore(**server.store_options(), pool_size=3)  # type: ignore[arg-type]
        store.apply_many([_start(i) for i in range(3)])

        # Restarted while the store was idle: its idle connections are dead; the next call notices
        # before using one and connects afresh, so it succeeds the first time.
        server.stop()
        server.start()
        assert store.count_events() == 3
        store.add_traffic(
            [TrafficCount(camera="cam1", line="l", class_name="car", direction="in", minute=T0, count=1)]
        )
        server.stop()
        with pytest.raises(StorageError) as info:
            store.count_events()
        error = info.value  # a traceback shows the message only, never the driver's exception
        assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)

        # Down: every call fails at once (no wait for a timeout), the batch stays with the caller.
        pending = [_start(i) for i in range(3, 8)]
        for _ in range(5):
            began = time.monotonic()
            with pytest.raises(StorageError, match=f"127.0.0.1:{server.port}/postgres"):
                store.apply_many(pending)
            with pytest.raises(StorageError):
                store.count_events()
            assert time.monotonic() - began < 1.0

        server.start()
        deadline = time.monotonic() + 15
        while True:  # what the pipeline's sink does: retry the kept batch until it is stored
            try:
                store.apply_many(pending)
                store.add_traffic(
                    [
                        TrafficCount(
                            camera="cam1", line="l", class_name="car", direction="in", minute=T0, count=1
                        )
                    ]
                )
                break
            except StorageError:
                assert time.monotonic() < deadline, "no reconnection within 15 s of the restart"
                time.sleep(0.1)
        assert store.count_events() == 8
        assert [r.count for r in store.traffic()] == [2]
        events, _ = store.list_events(limit=100)
        assert sorted(e.id for e in events) == [f"ev{i:04d}" for i in range(8)]
        store.close()
    finally:
        remove_postgres(server)


def test_one_batch_applied_by_two_writers_at_once_counts_once(postgres: PgServer, schema: str) -> None:
    """Two hosts replaying the same journal batch: one applies it, the other skips it."""
    stores = [PostgresEventStore(**postgres.store_options(), schema=schema) for _ in range(2)]  # type: ignore[arg-type]
    count = TrafficCount(camera="cam1", line="l", class_name="car", direction="in", minute=T0, count=1)
    barrier = threading.Barrier(2)
    results: list[bool] = []

    def replay(store: PostgresEventStore) -> None:
        barrier.wait()
        for i in range(20):
            results.append(store.apply_batch([_start(i)], [count], batch_id=f"host1:{i}"))

    threads = [threading.Thread(target=replay, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    try:
        assert sorted(results) == [False] * 20 + [True] * 20
        assert [r.count for r in stores[0].traffic()] == [20]
        assert stores[0].count_events() == 20
    finally:
        for s in stores:
            s.close()
