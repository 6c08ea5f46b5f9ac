"""Failed-login limits per account and per address, over a sliding window (in memory, per process)."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque


class LoginLimiter:
    def __init__(self, *, window_s: float, per_account: int, per_address: int) -> None:
        self.window_s = window_s
        self.limits = {"account": per_account, "address": per_address}
        self._failures: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._failures[key]
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times

    def blocked(self, username: str, address: str) -> float:
        """Seconds until a login may be tried again; 0 when it may now."""
        now = time.monotonic()
        wait = 0.0
        with self._lock:
            for key in (("account", username.lower()), ("address", address)):
                times = self._recent(key, now)
                if len(times) >= self.limits[key[0]]:
                    wait = max(wait, times[0] + self.window_s - now)
        return wait

    def failed(self, username: str, address: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in (("account", username.lower()), ("address", address)):
                self._recent(key, now).append(now)

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(("account", username.lower()), None)
