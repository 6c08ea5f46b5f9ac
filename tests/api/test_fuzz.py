"""Schemathesis against the OpenAPI of a live server, logged in as an administrator: no 5xx anywhere.

Bounded: ``FUZZ_EXAMPLES`` (default 25) cases per operation, one worker, a 10-minute cap. The
summary (operations, test cases, failures) is printed. Left out: the two SSE streams (they never
end), logout and password changes (they would end the fuzzer's own session).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.api.support import Parts, login, make_event, start
from tests.api.test_sse import live_server

pytestmark = pytest.mark.slow


def test_fuzz_the_api_with_valid_credentials_finds_no_server_error(parts: Parts, tmp_path: Path) -> None:
    pytest.importorskip("schemathesis")
    for i in range(5):
        ev = make_event(i, camera="cam1" if i % 2 else "cam2")
        parts.store.apply(start(ev))
        parts.security.review.ingest(start(ev))
    examples = os.environ.get("FUZZ_EXAMPLES", "25")
    from tests.api.reports.support import make_desk

    # The public report routes' limits are per address: raised, so the fuzzer's cases reach the routes.
    unlimited = {"requests_per_minute": 10**6, "submits_per_hour": 10**6, "token_uses_per_hour": 10**6}
    desk = make_desk(parts, **unlimited, max_open_per_contact=10**6)
    with live_server(parts, reports=desk) as url, httpx.Client(timeout=10) as client:
        login(client, base=url)
        session = client.cookies["khupho_session"]
        cmd = [
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            f"{url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            examples,
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--exclude-path-regex",
            "/stream$|/auth/logout|/auth/password|/users/\\{username\\}/password",
            "-H",
            f"Cookie: khupho_session={session}",
            "-H",
            f"X-CSRF-Token: {client.headers['X-CSRF-Token']}",
            "--report-dir",
            str(tmp_path),
        ]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        # The fuzzer's session is still good: it never logged itself out or got locked out.
        assert client.get(f"{url}/auth/me").status_code == 200
    print(run.stdout[-3000:])
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]
    tested = re.search(r"Tested: (\d+)", run.stdout)
    cases = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    assert tested and int(tested.group(1)) >= 25, run.stdout[-3000:]
    assert cases and cases.group(1) == cases.group(2) and int(cases.group(1)) > 500, run.stdout[-3000:]
