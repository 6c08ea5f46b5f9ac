"""Failed-login limits per account and per address, over a sliding window.

Per account in the database (``login_failures``): every API process, on any host, counts the same
failures, so spreading guesses over several processes does not multiply them. Times there are
wall-clock microseconds (the hosts' clocks are assumed synchronized, as NTP keeps them). Per
address in memory, per process: it only slows one client down, and keeping every address's
failures in a shared table would let a spray of addresses fill it.

A check and the failure it precedes are two steps (the password is checked between them, without
holding a lock), so guesses already in flight when the limit is reached still count but are not
refused: at most one extra per request running at that moment.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque

from api.auth.db import SecurityDb


class LoginLimiter:
    def __init__(self, db: SecurityDb, *, window_s: float, per_account: int, per_address: int) -> None:
        self.db = db
        self.window_s = window_s
        self.per_account = per_account
        self.per_address = per_address
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _recent(self, address: str, now: float) -> deque[float]:
        times = self._failures[address]
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times

    def blocked(self, username: str, address: str) -> float:
        """Seconds until a login may be tried again; 0 when it may now."""
        now = time.monotonic()
        wait = 0.0
        with self._lock:
            times = self._recent(address, now)
            if len(times) >= self.per_address:
                wait = times[0] + self.window_s - now
            if not times:
                del self._failures[address]
        now_us = _now_us()
        window_us = int(self.window_s * 1e6)
        row = self.db.read(
            "SELECT count(*) AS n, min(ts_us) AS oldest FROM login_failures WHERE username = ? AND ts_us > ?",
            (username.lower(), now_us - window_us),
        )[0]
        if row["n"] >= self.per_account:
            # The oldest failure leaving the window lets one more try in, as for an address.
            wait = max(wait, (row["oldest"] + window_us - now_us) / 1e6)
        return wait

    def failed(self, username: str, address: str) -> None:
        now_us = _now_us()
        with self.db.tx() as c:
            # Failures older than the window count for nobody any more.
            c.execute("DELETE FROM login_failures WHERE ts_us <= ?", (now_us - int(self.window_s * 1e6),))
            c.execute(
                "INSERT INTO login_failures (username, ts_us) VALUES (?, ?)", (username.lower(), now_us)
            )
        now = time.monotonic()
        with self._lock:
            self._recent(address, now).append(now)

    def succeeded(self, username: str) -> None:
        with self.db.tx() as c:
            c.execute("DELETE FROM login_failures WHERE username = ?", (username.lower(),))


def _now_us() -> int:
    return int(time.time() * 1_000_000)
