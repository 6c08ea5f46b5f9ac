"""Exponential backoff with jitter between reconnect attempts."""

from __future__ import annotations

import random

from ingest.config import BackoffConfig


class Backoff:
    """Delays ``initial * multiplier**n`` capped at ``maximum``, each scaled by ``1 ± jitter``.

    The jittered delay never exceeds ``maximum``. ``reset()`` after a connection that delivered
    frames, so the next outage starts again with a short delay.
    """

    def __init__(
        self,
        initial: float = 1.0,
        maximum: float = 30.0,
        multiplier: float = 2.0,
        jitter: float = 0.2,
        rng: random.Random | None = None,
    ) -> None:
        if not (0 < initial <= maximum) or multiplier < 1 or not 0 <= jitter <= 1:
            raise ValueError(
                f"bad backoff: initial={initial}, maximum={maximum}, multiplier={multiplier}, jitter={jitter}"
            )
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self.jitter = jitter
        self._rng = rng or random.Random()
        self.attempt = 0
        self._base = initial

    @classmethod
    def from_config(cls, config: BackoffConfig, rng: random.Random | None = None) -> Backoff:
        return cls(config.initial_s, config.max_s, config.multiplier, config.jitter, rng)

    def reset(self) -> None:
        self.attempt = 0
        self._base = self.initial

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt; grows until the cap."""
        base = self._base
        # Grow the base step by step (no multiplier**n: it would overflow after long outages).
        self._base = min(self.maximum, self._base * self.multiplier)
        self.attempt += 1
        delay = base * (1.0 + self._rng.uniform(-self.jitter, self.jitter))
        return min(self.maximum, max(0.0, delay))
