"""A scaled-down run of the live feed's fan-out benchmark on the session's PostgreSQL: two listener
processes, many subscribers each, every stored transition delivered to each exactly once."""

from __future__ import annotations

import pytest

from benchmarks.feed_fanout import format_table, run_fanout
from tests.conftest_pg import PgServer, postgres  # noqa: F401 - the session's PostgreSQL server fixture


@pytest.mark.slow
def test_every_subscriber_of_every_process_gets_every_transition_once(postgres: PgServer) -> None:  # noqa: F811
    result = run_fanout(
        postgres.store_options(), writers=2, rate=400, processes=2, subscribers=100, duration_s=1.5
    )
    assert result["stored"] >= 400, result  # about 1.5 s at 400/s
    assert result["exactly_once"], result
    assert result["deliveries"] == result["stored"] * 2 * 100
    assert result["dropped"] == 0
    assert 0 < result["latency_ms_p50"] < 1000, result
    assert "| 2 | 400 | 2 | 100 |" in format_table([result])
