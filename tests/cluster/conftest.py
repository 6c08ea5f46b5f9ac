from tests.conftest_pg import postgres  # noqa: F401 - the session's PostgreSQL server fixture
from tests.conftest_s3 import seaweedfs  # noqa: F401 - the session's SeaweedFS server fixture
