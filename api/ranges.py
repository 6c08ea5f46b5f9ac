"""HTTP ``Range: bytes=...`` requests (RFC 9110 §14), one range at a time, for video seeking."""

from __future__ import annotations

import re

_SPEC = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeNotSatisfiable(ValueError):
    """The range starts at or past the end of the representation: answer 416."""


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The first and last byte (inclusive) that ``header`` asks of a ``size``-byte body, or None to
    send the whole body (no header, another unit, several ranges, a malformed one: RFC 9110 lets a
    server ignore those). :class:`RangeNotSatisfiable` when no byte of the range exists."""
    if header is None:
        return None
    match = _SPEC.match(header.strip().replace(" ", ""))
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text:
        if not last_text:
            return None  # "bytes=-": malformed
        suffix = int(last_text)  # "bytes=-N": the last N bytes
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(f"bytes=-{suffix} of {size} bytes")
        return max(0, size - suffix), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if last_text and last < first:
        return None  # malformed: ignored, the whole body is sent
    if first >= size:
        raise RangeNotSatisfiable(f"bytes={first}- of {size} bytes")
    return first, min(last, size - 1)
