"""Traffic buckets in a time zone, the same for every backend.

The database sums per-minute rows into UTC quarter hours (every UTC offset in use
is a multiple of 15 minutes); Python regroups the quarters into the local hour or
day, so zones 30 or 45 minutes off UTC and days across DST changes come out right.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, tzinfo

from events.storage.store import TrafficBucket, TrafficRow, from_epoch_us

MINUTE_US = 60_000_000
QUARTER_US = 15 * MINUTE_US


def check_bucket(bucket: str) -> None:
    if bucket not in ("minute", "hour", "day"):
        raise ValueError(f"bucket must be minute, hour or day, got {bucket!r}")


def step_us(bucket: TrafficBucket) -> int:
    """The width (µs) of the rows the database sums into before :func:`regroup`."""
    return MINUTE_US if bucket == "minute" else QUARTER_US


def regroup(
    rows: Iterable[tuple[int, str, str, str, str, int]], bucket: TrafficBucket, tz: tzinfo
) -> list[TrafficRow]:
    """``(start µs, camera, line, class, direction, count)`` sums of :func:`step_us` rows, summed
    again per local bucket, oldest first."""
    sums: dict[tuple[datetime, str, str, str, str], int] = {}
    for t, cam, ln, cls, direction, n in rows:
        start = bucket_start(from_epoch_us(int(t)), bucket, tz)
        key = (start, cam, ln, cls, direction)
        sums[key] = sums.get(key, 0) + int(n)
    return [
        TrafficRow(
            time=start.astimezone(tz), camera=cam, line=ln, class_name=cls, direction=direction, count=n
        )
        for (start, cam, ln, cls, direction), n in sorted(sums.items())
    ]


def bucket_start(t: datetime, bucket: TrafficBucket, tz: tzinfo) -> datetime:
    """Start of the local bucket containing ``t``, as a UTC datetime (a unique key even across DST folds)."""
    if bucket == "minute":
        return t
    local = t.astimezone(tz)
    if bucket == "hour":
        start = local.replace(minute=0, second=0, microsecond=0)
    else:
        # fold=0: a midnight repeated by a DST change counts from its first occurrence.
        start = local.replace(hour=0, minute=0, second=0, microsecond=0, fold=0)
    return start.astimezone(UTC)
