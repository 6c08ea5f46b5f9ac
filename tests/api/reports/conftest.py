from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.reports import ReportDesk
from tests.api.reports.support import make_desk
from tests.api.support import Parts


@pytest.fixture
def desk(parts: Parts, models_dir: Path) -> ReportDesk:
    return make_desk(parts, models_dir)


@pytest.fixture
def public(parts: Parts, desk: ReportDesk) -> Iterator[TestClient]:
    """A client without credentials (a resident, an Open311 app)."""
    with TestClient(parts.app(reports=desk)) as c:
        yield c
