"""Debounce for one health condition: start after a fault lasts, clear after it has been gone a while."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Transition(Enum):
    START = "start"
    CLEAR = "clear"


@dataclass(frozen=True, slots=True)
class TimerEvent:
    transition: Transition
    since: float  # when the fault (START) or the healthy streak (CLEAR) began


class ConditionTimer:
    """Turns a per-sample fault flag into start/clear transitions with time hysteresis.

    A condition starts once the fault has been seen on every sample for at least
    ``on_s`` seconds of stream time and clears once it has been absent on every
    sample for ``off_s``; starts and clears therefore alternate. The value
    hysteresis (a looser threshold while active) is the caller's: it passes
    ``active`` into its own threshold choice.
    """

    __slots__ = ("_fault_since", "_healthy_since", "active", "off_s", "on_s")

    def __init__(self, on_s: float, off_s: float) -> None:
        self.on_s = on_s
        self.off_s = off_s
        self.active = False
        self._fault_since: float | None = None
        self._healthy_since: float | None = None

    def update(self, fault: bool, pts: float, onset: float | None = None) -> TimerEvent | None:
        """Feed one sample. ``onset`` backdates a new fault streak (when a measure knows the fault
        began before this sample, e.g. the picture has been unchanged since an earlier sample)."""
        if not self.active:
            if not fault:
                self._fault_since = None
                return None
            if self._fault_since is None:
                self._fault_since = pts if onset is None else min(onset, pts)
            if pts - self._fault_since >= self.on_s:
                since = self._fault_since
                self.active, self._fault_since, self._healthy_since = True, None, None
                return TimerEvent(Transition.START, since)
            return None
        if fault:
            self._healthy_since = None
            return None
        if self._healthy_since is None:
            self._healthy_since = pts
        if pts - self._healthy_since >= self.off_s:
            since = self._healthy_since
            self.active, self._fault_since, self._healthy_since = False, None, None
            return TimerEvent(Transition.CLEAR, since)
        return None

    def hold(self) -> None:
        """Forget the streak in progress (the sample says nothing about this condition): no
        transition, and the next streak starts afresh. The active state is kept."""
        self._fault_since = None
        self._healthy_since = None
