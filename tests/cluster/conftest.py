"""The cluster tests' servers: the session's PostgreSQL and SeaweedFS, and an empty event store."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from events.storage.postgres import PostgresEventStore
from tests.conftest_pg import PgServer, postgres  # noqa: F401 - the session's PostgreSQL server fixture
from tests.conftest_s3 import seaweedfs  # noqa: F401 - the session's SeaweedFS server fixture


@pytest.fixture
def store(postgres: PgServer) -> Iterator[PostgresEventStore]:  # noqa: F811 - the fixture above
    """An empty PostgreSQL event store in a schema of its own, dropped after the test."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    made = PostgresEventStore(**postgres.store_options(), schema=schema)  # type: ignore[arg-type]
    yield made
    made.close()
    with postgres.connect() as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
