"""Exponential backoff with jitter between reconnect attempts."""

from __future__ import annotations

import random

from ingest.config import BackoffConfig


class Backoff:
    """Delays ``initial_s * multiplier**n`` capped at ``max_s``, each scaled by ``1 ± jitter``
    (the settings and their validation are :class:`BackoffConfig`'s).

    The jittered delay never exceeds ``max_s``. ``reset()`` after a connection that delivered
    frames, so the next outage starts again with a short delay.
    """

    def __init__(self, config: BackoffConfig, rng: random.Random | None = None) -> None:
        self.config = config
        self._rng = rng or random.Random()
        self.attempt = 0
        self._base = config.initial_s

    def reset(self) -> None:
        self.attempt = 0
        self._base = self.config.initial_s

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt; grows until the cap."""
        c = self.config
        base = self._base
        # Grow the base step by step (no multiplier**n: it would overflow after long outages).
        self._base = min(c.max_s, self._base * c.multiplier)
        self.attempt += 1
        delay = base * (1.0 + self._rng.uniform(-c.jitter, c.jitter))
        return min(c.max_s, max(0.0, delay))
