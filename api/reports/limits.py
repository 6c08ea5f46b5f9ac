"""Rate limits of the public report routes: sliding windows per client address and per tracking code,
in memory (per process). A refusal says how long to wait."""

from __future__ import annotations

import threading
import time
from collections import deque


class RateLimiter:
    """``hit(key)`` counts one use of ``key``; when ``limit`` uses fell within ``window_s`` it counts
    nothing and returns the seconds until the oldest use leaves the window."""

    def __init__(self, limit: int, window_s: float, *, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self._uses: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            uses = self._uses.get(key)
            if uses is None:
                if len(self._uses) >= self.max_keys:
                    self._prune(now)
                uses = self._uses[key] = deque()
            while uses and uses[0] <= now - self.window_s:
                uses.popleft()
            if len(uses) >= self.limit:
                return max(0.001, uses[0] + self.window_s - now)
            uses.append(now)
            return 0.0

    def _prune(self, now: float) -> None:
        # Keys whose uses all left the window carry no information; a flood of addresses cannot grow
        # memory past max_keys (the oldest keys go when all are live).
        stale = [k for k, u in self._uses.items() if not u or u[-1] <= now - self.window_s]
        for k in stale:
            del self._uses[k]
        while len(self._uses) >= self.max_keys:
            del self._uses[next(iter(self._uses))]
