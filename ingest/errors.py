"""The one exception the ingest stage raises for a source it cannot read."""

from __future__ import annotations


class SourceError(Exception):
    """A video file or camera stream cannot be opened or read.

    The message names the camera, the source (credentials masked) and the reason, e.g.
    ``camera 'gate': rtsp://admin:***@10.0.0.7/stream1: authentication failed (401 Unauthorized)``.
    ``kind`` is a short machine-readable cause for status pages and metrics: one of
    ``not_found``, ``empty``, ``permission``, ``unrecognised``, ``no_video``, ``too_large``,
    ``unauthorized``, ``forbidden``, ``refused``, ``unreachable``, ``timeout``, ``stalled``,
    ``protocol``, ``undecodable``, ``damaged``, ``io``.

    PyAV's own exceptions carry the raw URL (with its password), so a ``SourceError`` is never
    chained to them (no ``__cause__``, no ``__context__``): their text is scrubbed into ``reason``.
    """

    def __init__(self, camera: str, source: str, reason: str, kind: str = "io") -> None:
        self.camera = camera
        self.source = source
        self.reason = reason
        self.kind = kind
        super().__init__(f"camera {camera!r}: {source}: {reason}")
