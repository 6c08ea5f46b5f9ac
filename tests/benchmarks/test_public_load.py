"""The public-load benchmark end to end, small: one camera, a few streams and polls, short windows."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.public_load import run, table


@pytest.mark.slow
def test_public_load_benchmark_runs_and_reports(footage_dir: Path, models_dir: Path) -> None:
    result = run(footage_dir, models_dir, cameras=1, sse_clients=10, rps=10, seconds=5)
    assert result["sse"]["connected"] == 10 and result["sse"]["errors"] == 0
    assert result["poll"]["errors"] == 0 and result["poll"]["requests"] >= 50
    assert result["poll"]["p99_ms"] is not None and result["poll"]["p50_ms"] <= result["poll"]["p99_ms"]
    totals = result["analysed_fps_total"]
    assert all(v > 0 for v in totals.values())
    assert result["stream_subscribers_left_after"] == 0  # clients that left freed their slots
    assert "load / quiet" in table(result)
