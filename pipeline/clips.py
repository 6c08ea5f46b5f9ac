"""Event clips: MP4s cut from each camera's packet ring, from pre-roll before an event to post-roll after.

The camera worker shows the recorder every transition (:meth:`ClipRecorder.observe`, cheap:
it runs on the camera's thread). A ``start`` of a clip-worthy event pins the camera's ring
at ``start_pts - pre_roll_s``, so those packets stay; an ``end`` sets the clip's end at
``end_pts + post_roll_s``. The recorder's own thread waits until the ring holds that moment
(stream time, so a replay at 4x speed cuts 4x sooner), then cuts the packets from the last
keyframe at or before the start, remuxes them to MP4 (no re-encode) and hands the bytes to
``upload``. A clip never runs longer than ``max_length_s``: an event that outlasts it gets the
first ``max_length_s`` (and its later ``end`` is ignored). If the camera stops sending (offline,
shutdown) the clip is cut with what the ring holds.

Object keys are derived from the event alone (``clips/{camera}/{yyyy}/{mm}/{dd}/{event_id}.mp4``,
the UTC date of its start), so an upload retried, or replayed after a restart, lands on the same
object. Each event gets at most one clip from this recorder.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Protocol

from events.model import Event, EventTransition, Phase
from ingest.packet_ring import PacketRing
from ingest.remux import ClipFormatError, remux_mp4
from pipeline.config import ClipConfig

log = logging.getLogger(__name__)

CLIP_CONTENT_TYPE = "video/mp4"
# How late an event's start transition may reach the recorder after the frame it starts at
# (detection, tracking, the rule's own confirmation): the ring keeps this much beyond the pre-roll.
RING_SLACK_S = 5.0
# A clip whose end does not arrive in the ring this long (wall time) after the post-roll was due
# is cut with what is there: the camera stopped sending.
STALL_S = 10.0


class ClipUpload(Protocol):
    """Takes a finished clip: stores it under ``key`` (idempotent: the same key for a retry) and
    links it to the event. Called on the recorder's thread, so it may block; the service's
    (``api.service.ClipToSpool``) hands it to the upload spool, which tries the object store
    once and otherwise keeps the clip on disk and retries."""

    def __call__(self, *, key: str, data: bytes, content_type: str, event_id: str) -> None: ...


def make_ring(camera: str, config: ClipConfig) -> PacketRing:
    """The packet ring a camera needs for ``config``'s clips."""
    return PacketRing(
        camera, seconds=config.pre_roll_s + RING_SLACK_S, max_bytes=int(config.buffer_mb * 2**20)
    )


def _segment(value: str) -> str:
    seg = re.sub(r"[^A-Za-z0-9._-]", "_", value) or "_"
    return "_" if seg in (".", "..") else seg


def clip_key(event: Event, prefix: str = "clips") -> str:
    """``clips/{camera}/{yyyy}/{mm}/{dd}/{event_id}.mp4``, dated by the event's start (UTC)."""
    d = event.start_time.astimezone(UTC)
    return f"{prefix}/{_segment(event.camera)}/{d:%Y}/{d:%m}/{d:%d}/{_segment(event.id)}.mp4"


@dataclass(slots=True)
class _Clip:
    event: Event
    ring: PacketRing
    start: float  # frame timeline seconds: event start minus pre-roll
    until: float  # where the clip ends: start + max length until the event's end is known
    pin: int
    post_roll_s: float
    ended_at: float | None = None  # clock() when the end transition came


@dataclass(frozen=True, slots=True)
class ClipStats:
    started: int = 0  # events whose clip is being recorded
    written: int = 0  # clips handed to the uploader
    failed: int = 0  # clips lost: nothing held, remux or upload error (logged)
    unsupported: int = 0  # the camera's codec cannot go into MP4 without re-encoding
    short: int = 0  # clips that start later than the pre-roll asked (the ring did not hold it)
    pending: int = 0


class ClipRecorder:
    """Records clips of the configured cameras' events on one thread; see the module docstring."""

    def __init__(
        self,
        *,
        upload: ClipUpload,
        poll_s: float = 0.2,
        stall_s: float = STALL_S,
        clock: Callable[[], float] = time.monotonic,
        tmp_dir: str | Path | None = None,
        remember: int = 4096,
    ) -> None:
        self.upload = upload
        self.poll_s = poll_s
        self.stall_s = stall_s
        self._clock = clock
        self._tmp_dir = tmp_dir
        self._remember = remember
        self._cameras: dict[str, tuple[PacketRing, ClipConfig]] = {}
        self._cond = threading.Condition()
        self._pending: dict[str, _Clip] = {}
        self._done: OrderedDict[str, None] = OrderedDict()  # events already clipped (or given up)
        self._busy = False
        self._closing = False
        self._thread: threading.Thread | None = None
        self._counts = dict.fromkeys(("started", "written", "failed", "unsupported", "short"), 0)
        self._unsupported_logged: set[str] = set()

    def add_camera(self, camera: str, ring: PacketRing, config: ClipConfig) -> None:
        with self._cond:
            self._cameras[camera] = (ring, config)

    def start(self) -> ClipRecorder:
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="clip-recorder", daemon=True)
                self._thread.start()
        return self

    def stats(self) -> ClipStats:
        with self._cond:
            return ClipStats(**self._counts, pending=len(self._pending))

    def buffered_bytes(self) -> dict[str, int]:
        """Payload bytes each camera's ring holds now."""
        return {camera: ring.stats.bytes for camera, (ring, _) in list(self._cameras.items())}

    # -- the camera workers' side ----------------------------------------------------------------------

    def observe(self, transitions: Sequence[EventTransition]) -> None:
        """Note the clip-worthy starts and ends among ``transitions``; never blocks for long."""
        for transition in transitions:
            event = transition.event
            camera = self._cameras.get(event.camera)
            if camera is None or event.type not in camera[1].types:
                continue
            ring, config = camera
            with self._cond:
                if self._closing or event.id in self._done:
                    continue
                clip = self._pending.get(event.id)
                if clip is None:
                    if transition.phase is not Phase.START:
                        continue  # its start was before this run: the packets are gone
                    if ring.unsupported is not None:
                        # The camera's codec cannot go into MP4: said once when it connected.
                        self._counts["unsupported"] += 1
                        self._done[event.id] = None
                        continue
                    start = event.start_pts - config.pre_roll_s
                    clip = _Clip(
                        event=event,
                        ring=ring,
                        start=start,
                        until=start + config.max_length_s,
                        pin=ring.pin(start),
                        post_roll_s=config.post_roll_s,
                    )
                    self._pending[event.id] = clip
                    self._counts["started"] += 1
                if transition.phase is Phase.END:
                    end = event.end_pts if event.end_pts is not None else event.start_pts
                    clip.until = min(clip.until, end + config.post_roll_s)
                    clip.ended_at = self._clock()
                    self._cond.notify()

    # -- flushing and closing --------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every clip whose event has ended is written; ``False`` on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._busy and all(c.ended_at is None for c in self._pending.values()), timeout
            )

    def close(self, timeout: float = 10.0) -> None:
        """Cut every pending clip with what its ring holds now (no more packets are coming at
        shutdown), hand them over (up to ``timeout`` seconds), then stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("clip recorder still busy after %.1f s at close", timeout)
        with self._cond:
            if self._pending:
                self._counts["failed"] += len(self._pending)
                log.warning("%d clips not written at close", len(self._pending))
                for clip in self._pending.values():
                    clip.ring.unpin(clip.pin)
                self._pending.clear()

    # -- the recorder's thread -------------------------------------------------------------------------

    def _due(self) -> list[_Clip]:
        """Clips ready to cut (lock held): their end is in the ring, or it is not coming."""
        now = self._clock()
        due = []
        for clip in self._pending.values():
            newest = clip.ring.newest
            if (
                self._closing
                or (newest is not None and newest >= clip.until)
                or (clip.ended_at is not None and now - clip.ended_at > clip.post_roll_s + self.stall_s)
            ):
                due.append(clip)
        for clip in due:
            del self._pending[clip.event.id]
            self._done[clip.event.id] = None
        while len(self._done) > self._remember:
            self._done.popitem(last=False)
        return due

    def _run(self) -> None:
        while True:
            with self._cond:
                self._busy = False
                self._cond.notify_all()  # for flush()
                self._cond.wait(self.poll_s)
                due = self._due()
                closing = self._closing
                if not due and closing:
                    return
                self._busy = bool(due)
            for clip in due:
                self._record(clip)

    def _record(self, clip: _Clip) -> None:
        event = clip.event
        try:
            run = clip.ring.cut(clip.start, clip.until)
        finally:
            clip.ring.unpin(clip.pin)
        outcome = "failed"
        try:
            if run is None:
                if clip.ring.unsupported is not None:
                    outcome = "unsupported"  # a reconnect brought a codec MP4 cannot carry
                    return
                log.warning("clip of event %s on %s: no video held for it", event.id, event.camera)
                return
            try:
                data = remux_mp4(run, tmp_dir=self._tmp_dir)
            except ClipFormatError as exc:
                outcome = "unsupported"
                if event.camera not in self._unsupported_logged:
                    self._unsupported_logged.add(event.camera)
                    log.warning("camera %r: no event clips: %s", event.camera, exc)
                return
            key = clip_key(event)
            self.upload(key=key, data=data, content_type=CLIP_CONTENT_TYPE, event_id=event.id)
            outcome = "written"
            if run.start > clip.start + 0.5:
                self._counts_add("short")
                log.info(
                    "clip of event %s on %s starts %.1f s after the pre-roll asked (not held)",
                    event.id, event.camera, run.start - clip.start,
                )  # fmt: skip
        except Exception:
            log.exception("clip of event %s on %s not written", event.id, event.camera)
        finally:
            self._counts_add(outcome)

    def _counts_add(self, name: str) -> None:
        with self._cond:
            self._counts[name] += 1
