"""One error for every refusal of a resident's request: a machine-readable ``kind``, an HTTP status,
a message that says what to change, and for rate limits how long to wait."""

from __future__ import annotations


class ReportRefused(Exception):
    def __init__(self, kind: str, message: str, status: int, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retry_after = retry_after
