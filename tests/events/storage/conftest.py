from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from events.storage.sqlite import SqliteEventStore
from events.storage.store import EventStore
from tests.conftest_pg import PgServer, postgres  # noqa: F401 - the session's PostgreSQL server fixture
from tests.conftest_s3 import seaweedfs  # noqa: F401 - the session's SeaweedFS server fixture

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def new_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[], EventStore]]:
    """Makes empty event stores of one backend: a new SQLite file, or a new PostgreSQL schema on the
    session's server; all are closed (and the schemas dropped) after the test."""
    made: list[EventStore] = []
    schemas: list[str] = []
    server: PgServer | None = request.getfixturevalue("postgres") if request.param == "postgres" else None

    def make() -> EventStore:
        store: EventStore
        if server is None:
            store = SqliteEventStore(tmp_path_factory.mktemp("db") / "events.db")
        else:
            from events.storage.postgres import PostgresEventStore

            schema = f"t_{uuid.uuid4().hex[:16]}"
            schemas.append(schema)
            store = PostgresEventStore(**server.store_options(), schema=schema)  # type: ignore[arg-type]
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()
    if server is not None and schemas:
        with server.connect() as conn:
            for schema in schemas:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def store(new_store: Callable[[], EventStore]) -> EventStore:
    """An empty event store, once per backend."""
    return new_store()
