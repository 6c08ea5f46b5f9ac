from __future__ import annotations

from tests.conftest_s3 import seaweedfs  # noqa: F401 - the session's SeaweedFS server fixture
