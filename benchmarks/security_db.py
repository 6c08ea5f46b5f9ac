"""The security tables' cost per request on SQLite and PostgreSQL: a session check (every request with a
cookie), a login-limit check, and audit appends from one and from two "API processes" (two Security
objects on one database, two threads each; the appends take turns under the write lock).

    python -m benchmarks.security_db [--rounds 2000]

PostgreSQL: a private server on 127.0.0.1 started for the run (``tests/conftest_pg.py``'s recipe, the
PostgreSQL 15 binaries), stopped and removed after.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from api.auth import Role, ScopeIndex
from api.auth.db import SecurityDb, SqliteSecurityDb
from api.auth.db_postgres import PostgresSecurityDb
from api.auth.security import Security
from events.storage.postgres import PostgresEventStore


def _median_us(call: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def _appends_per_s(processes: list[Security], threads_each: int, rows_each: int) -> float:
    start = threading.Barrier(len(processes) * threads_each + 1)

    def run(security: Security) -> None:
        start.wait()
        for i in range(rows_each):
            security.audit.record("bench", "bench.append", f"row{i}")

    workers = [threading.Thread(target=run, args=(p,)) for p in processes for _ in range(threads_each)]
    for w in workers:
        w.start()
    start.wait()
    t0 = time.perf_counter()
    for w in workers:
        w.join()
    return len(workers) * rows_each / (time.perf_counter() - t0)


def measure(open_db: Callable[[], SecurityDb], rounds: int, run: int) -> dict[str, float]:
    a = Security.open(open_db(), ScopeIndex())
    b = Security.open(open_db(), ScopeIndex())
    user = a.auth.add_user(f"bench{run}", "bench-password-1", Role.ADMIN, [])
    token, _ = a.auth.new_session(user, ttl_s=3600)
    result = {
        "session_check_us": _median_us(lambda: b.auth.session_principal(token), rounds),
        "login_limit_check_us": _median_us(lambda: b.limiter.blocked("bench", "10.0.0.1"), rounds),
        "append_1proc_1thread_per_s": _appends_per_s([a], 1, rounds // 4),
        "append_2proc_2threads_per_s": _appends_per_s([a, b], 2, rounds // 8),
    }
    verified = a.audit.verify()
    assert verified.ok, verified.problem
    a.close()
    b.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3, help="the table shows each figure's median")
    args = parser.parse_args()

    def medians(name: str, open_db: Callable[[], SecurityDb]) -> dict[str, float | str]:
        runs = [measure(open_db, args.rounds, run) for run in range(args.runs)]
        return {"backend": name, **{k: statistics.median(r[k] for r in runs) for k in runs[0]}}

    from tests.conftest_pg import remove_postgres, start_postgres

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.db"
        rows.append(medians("sqlite", lambda: SqliteSecurityDb(path)))
    server = start_postgres()
    try:
        options = server.store_options()
        rows.append(
            medians(
                "postgres",
                lambda: PostgresSecurityDb(PostgresEventStore(**options), close_store=True),  # type: ignore[arg-type]
            )
        )
    finally:
        remove_postgres(server)
    print(
        "| backend | session check (median µs) | login-limit check (median µs) | audit appends/s, 1 process "
        "| audit appends/s, 2 processes × 2 threads |"
    )
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['backend']} | {r['session_check_us']:.0f} | {r['login_limit_check_us']:.0f} "
            f"| {r['append_1proc_1thread_per_s']:.0f} | {r['append_2proc_2threads_per_s']:.0f} |"
        )


if __name__ == "__main__":
    main()
