from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.metrics import KhuphoMetrics
from events.storage.bus import EventBus
from events.storage.objects import LocalObjectStore
from events.storage.sqlite import SqliteEventStore
from tests.api.security_backends import BACKENDS, SecurityBackend
from tests.api.support import T0, Parts, login, open_security
from tests.conftest_pg import postgres  # noqa: F401 - the session's PostgreSQL server fixture
from tests.conftest_s3 import seaweedfs  # noqa: F401 - the session's SeaweedFS server fixture


@pytest.fixture(params=BACKENDS)
def security_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SecurityBackend]:
    """Security databases on SQLite, then on the session's PostgreSQL: for the store-level tests."""
    server = request.getfixturevalue("postgres") if request.param == "postgres" else None
    backend = SecurityBackend(request.param, tmp_path, server)
    yield backend
    backend.close()


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[Parts]:
    store = SqliteEventStore(tmp_path / "events.db")
    metrics = KhuphoMetrics()
    p = Parts(
        store=store,
        objects=LocalObjectStore(tmp_path / "media"),
        bus=EventBus(),
        metrics=metrics,
        security=open_security(tmp_path / "events.db", metrics.registry),
        cameras=[
            {
                "id": "cam1",
                "name": "Front gate",
                "state": "online",
                "last_frame_time": T0,
                "source_fps": 25.0,
                "analysed_fps": 5.0,
                "reconnects": 1,
                "last_error": None,
            },
            {"id": "cam2", "state": "offline", "reconnects": 4, "last_error": "connection refused"},
        ],
    )
    yield p
    p.security.close()
    store.close()


@pytest.fixture
def client(parts: Parts) -> Iterator[TestClient]:
    """A test client logged in as an administrator (every camera)."""
    with TestClient(parts.app()) as c:
        login(c)
        yield c
