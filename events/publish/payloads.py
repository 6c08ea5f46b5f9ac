"""Message bodies shared by the publishers: events as Frigate's ``new``/``update``/``end``."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from events.model import EventTransition, Phase

_PHASES = {Phase.START: "new", Phase.UPDATE: "update", Phase.END: "end"}


class EventPayloads:
    """``{"type": "new"|"update"|"end", "before": {...}|null, "after": {...}}`` per transition.

    ``before`` is the event as last published (null for ``new``); the memory of
    open events is bounded (the oldest are forgotten first).
    """

    def __init__(self, remember: int = 10_000) -> None:
        self._last: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._remember = remember

    def payload(self, transition: EventTransition) -> dict[str, Any]:
        after = transition.event.model_dump(mode="json")
        before = self._last.pop(transition.event.id, None)
        if transition.phase is not Phase.END:
            self._last[transition.event.id] = after
            while len(self._last) > self._remember:
                self._last.popitem(last=False)
        return {"type": _PHASES[transition.phase], "before": before, "after": after}


def shown(segment: dict[str, Any]) -> tuple[Any, ...]:
    """What a viewer of a segment sees, without the ticking age: a change here is worth a message."""
    return (segment["level"], segment["speed_kmh"], segment["stale"])


class SegmentChanges:
    """Segments whose shown state (or, with ``levels_only``, level) changed since the last call."""

    def __init__(self, *, levels_only: bool = False) -> None:
        self.levels_only = levels_only
        self._last: dict[str, Any] = {}

    def changed(self, segments: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for seg in segments:
            key = seg["level"] if self.levels_only else shown(seg)
            if self._last.get(seg["id"]) != key:
                self._last[seg["id"]] = key
                out.append(seg)
        return out

    def forget(self) -> None:
        """Everything counts as changed next time (after a broker reconnect, to re-send retained state)."""
        self._last.clear()
