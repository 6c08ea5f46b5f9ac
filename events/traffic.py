"""Per-minute traffic counts from line crossings.

``TrafficAggregator`` sums crossings per (camera, line, class, direction,
wall-clock minute); the events stage takes its rows with ``flush_all`` after
every frame, so the current minute is visible at once. A row is an increment,
not a total: the same key comes out again with the next crossing in that
minute, so storage must add rows with the same key
(``count = count + excluded.count``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, tzinfo

from events.model import TrafficCount


@dataclass(frozen=True, slots=True)
class Crossing:
    """One counted line crossing, as a line rule reports it."""

    camera: str
    line: str
    class_name: str
    direction: str  # "in" or "out"
    wall_time: float  # epoch seconds of the frame


def minute_floor(wall_time: float) -> int:
    """Epoch seconds of the start of the minute containing ``wall_time``.

    Flooring the epoch is flooring local time for every zone whose UTC offset
    is a whole number of minutes (all of today's zones).
    """
    return math.floor(wall_time / 60.0) * 60


_Key = tuple[str, str, str, str, int]


class TrafficAggregator:
    """Crossing counts per camera, line, class, direction and wall-clock minute."""

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        self._counts: Counter[_Key] = Counter()

    def add(self, crossing: Crossing, n: int = 1) -> None:
        key = (crossing.camera, crossing.line, crossing.class_name, crossing.direction)
        self._counts[(*key, minute_floor(crossing.wall_time))] += n

    def add_all(self, crossings: Iterable[Crossing]) -> None:
        for crossing in crossings:
            self.add(crossing)

    def flush_all(self) -> list[TrafficCount]:
        """Every row, the current minute's partial counts included, oldest first."""
        return self._take(list(self._counts))

    def _take(self, keys: list[_Key]) -> list[TrafficCount]:
        keys.sort(key=lambda k: (k[4], k[0], k[1], k[2], k[3]))
        rows = [
            TrafficCount(
                camera=camera,
                line=line,
                class_name=class_name,
                direction=direction,
                minute=datetime.fromtimestamp(minute, self.tz),
                count=self._counts.pop((camera, line, class_name, direction, minute)),
            )
            for camera, line, class_name, direction, minute in keys
        ]
        return rows
