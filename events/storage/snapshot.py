"""Event snapshots: a JPEG of the frame with the object's box and label, written off the hot path.

:func:`encode_snapshot` draws on a copy (never on the pipeline's frame) and encodes.
:class:`SnapshotWriter` takes snapshot candidates from the rules, keeps the best
pending one per event, and on its own thread encodes and hands the JPEG to the
upload spool under ``snapshots/{camera}/{yyyy}/{mm}/{dd}/{event_id}.jpg``; the
spool uploads it (now, or after an outage) and records the key with
:meth:`events.storage.store.EventStore.set_snapshot`.

Back-pressure: at most ``max_pending`` events wait. A new candidate for a waiting
event replaces it when better (``superseded``), otherwise it is ignored
(``not_better``); a candidate for a new event when the queue is full is dropped,
counted (``dropped``) and logged. Encoding failures are counted (``failed``) and
logged; upload failures are the spool's to retry.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

import cv2
import numpy as np

from events.storage.spool import UploadSpool

log = logging.getLogger(__name__)

# A few saturated BGR colours, picked per label so one class keeps one colour across snapshots.
_PALETTE = (
    (0, 200, 255),
    (255, 128, 0),
    (60, 220, 60),
    (230, 60, 230),
    (0, 90, 255),
    (255, 200, 0),
    (140, 80, 255),
    (0, 230, 170),
)


def label_colour(label: str) -> tuple[int, int, int]:
    """The BGR colour used for ``label``'s box."""
    return _PALETTE[zlib.crc32(label.encode()) % len(_PALETTE)]


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        got = getattr(image, "shape", type(image).__name__), getattr(image, "dtype", "")
        raise ValueError(f"snapshot image must be an H x W x 3 uint8 BGR array, got {got}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError("snapshot image is empty")


def encode_snapshot(
    image_bgr: np.ndarray,
    box_xyxy: Sequence[float] | np.ndarray,
    label: str,
    confidence: float,
    max_side: int | None = None,
    quality: int = 85,
    *,
    crop: bool = False,
    other_boxes: np.ndarray | None = None,
) -> bytes:
    """JPEG bytes of the frame (or, with ``crop``, the box's surroundings) with the box and label drawn.

    ``box_xyxy`` is in ``image_bgr``'s pixels. ``max_side`` shrinks the picture so
    its longer side is at most that many pixels (before drawing, so line widths and
    text stay legible). ``other_boxes`` (xyxy [K, 4]), e.g. the rest of a crowd, are
    outlined thinly. The input array is never modified.
    """
    _check_image(image_bgr)
    box = np.asarray(box_xyxy, dtype=np.float64).reshape(-1)
    if box.shape != (4,) or not np.all(np.isfinite(box)):
        raise ValueError(f"box must be 4 finite numbers x1, y1, x2, y2, got {box_xyxy!r}")
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    h, w = image_bgr.shape[:2]
    x1, y1, x2, y2 = np.clip(box, [0, 0, 0, 0], [w - 1, h - 1, w - 1, h - 1])
    x1, x2 = min(x1, x2), max(x1, x2)
    y1, y2 = min(y1, y2), max(y1, y2)

    view = image_bgr
    ox = oy = 0
    if crop:
        # The box and as much again around it, so the snapshot shows where the object is.
        mx, my = max(x2 - x1, 32.0) / 2, max(y2 - y1, 32.0) / 2
        cx1, cy1 = int(max(0, x1 - mx)), int(max(0, y1 - my))
        cx2, cy2 = int(min(w, x2 + mx + 1)), int(min(h, y2 + my + 1))
        view = image_bgr[cy1:cy2, cx1:cx2]
        ox, oy = cx1, cy1
    vh, vw = view.shape[:2]
    scale = 1.0
    if max_side is not None and max(vh, vw) > max_side:
        scale = max_side / max(vh, vw)
        out = cv2.resize(
            view, (max(1, round(vw * scale)), max(1, round(vh * scale))), interpolation=cv2.INTER_AREA
        )
    else:
        out = view.copy()  # a slice or the caller's frame: draw on our own copy

    oh, ow = out.shape[:2]
    p1 = (int(np.rint((x1 - ox) * scale)), int(np.rint((y1 - oy) * scale)))
    p2 = (int(np.rint((x2 - ox) * scale)), int(np.rint((y2 - oy) * scale)))
    side = max(oh, ow)
    thickness = max(2, round(side / 400))
    colour = label_colour(label)
    if other_boxes is not None and len(other_boxes):
        b = (np.asarray(other_boxes, dtype=np.float64).reshape(-1, 4) - [ox, oy, ox, oy]) * scale
        b = b[np.all(np.isfinite(b), axis=1)].round().astype(np.int32)
        # Each box as a closed 4-point polygon: one polylines call outlines them all.
        quads = np.stack([b[:, [0, 1]], b[:, [2, 1]], b[:, [2, 3]], b[:, [0, 3]]], axis=1)
        cv2.polylines(out, list(quads), True, colour, max(2, thickness // 2), cv2.LINE_AA)
    cv2.rectangle(out, p1, p2, colour, thickness, cv2.LINE_AA)

    text = f"{label} {confidence:.0%}"
    font = cv2.FONT_HERSHEY_SIMPLEX
    font_scale = max(0.5, side / 1400)
    text_thickness = max(1, round(font_scale * 2))
    (tw, th), baseline = cv2.getTextSize(text, font, font_scale, text_thickness)
    pad = max(2, thickness)
    # Above the box when there is room, else inside its top edge.
    top = p1[1] - th - baseline - 2 * pad
    if top < 0:
        top = p1[1]
    left = min(max(0, p1[0]), max(0, ow - tw - 2 * pad))
    cv2.rectangle(out, (left, top), (left + tw + 2 * pad, top + th + baseline + 2 * pad), colour, cv2.FILLED)
    luminance = 0.114 * colour[0] + 0.587 * colour[1] + 0.299 * colour[2]
    ink = (0, 0, 0) if luminance > 128 else (255, 255, 255)
    cv2.putText(out, text, (left + pad, top + pad + th), font, font_scale, ink, text_thickness, cv2.LINE_AA)

    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("OpenCV could not encode the snapshot as JPEG")
    return buf.tobytes()


class SnapshotCandidateLike(Protocol):
    """What the writer reads from a candidate (``events.rules.base.SnapshotCandidate``)."""

    event_id: str
    camera: str
    image: np.ndarray  # the whole frame, BGR, shared with the pipeline: read only
    confidence: float
    class_name: str


def _box(candidate: Any) -> Any:
    for name in ("box", "xyxy", "box_xyxy"):
        value = getattr(candidate, name, None)
        if value is not None:
            return value
    raise AttributeError(f"snapshot candidate {type(candidate).__name__} has no box/xyxy attribute")


def _when(candidate: Any) -> datetime:
    """The candidate's wall-clock time (``wall_time``, epoch seconds), or now."""
    wall_time = getattr(candidate, "wall_time", None)
    if isinstance(wall_time, int | float) and np.isfinite(wall_time):
        return datetime.fromtimestamp(wall_time, UTC)
    return datetime.now(UTC)


def _segment(value: str) -> str:
    """A safe single key segment: anything but letters, digits, '.', '_' and '-' becomes '_'."""
    seg = re.sub(r"[^A-Za-z0-9._-]", "_", value) or "_"
    return "_" if seg in (".", "..") else seg


def _ascii(value: str) -> str:
    """The value unchanged if printable ASCII, else percent-encoded (S3 metadata travels in headers)."""
    return value if value.isascii() and value.isprintable() else quote(value, safe=" ")


class Redactor(Protocol):
    """Hides faces: a copy of ``image`` with faces and the heads of ``person_boxes`` (xyxy) blurred."""

    def redact(self, image: np.ndarray, person_boxes: np.ndarray) -> np.ndarray: ...


def unredacted_key(key: str) -> str:
    """Where the original of a redacted snapshot is kept."""
    stem, dot, ext = key.rpartition(".")
    return f"{stem}.unredacted.{ext}" if dot else f"{key}.unredacted"


def snapshot_key(camera: str, event_id: str, when: datetime, prefix: str = "snapshots") -> str:
    """``snapshots/{camera}/{yyyy}/{mm}/{dd}/{event_id}.jpg`` with the UTC date of ``when``."""
    d = when.astimezone(UTC)
    return f"{prefix}/{_segment(camera)}/{d:%Y}/{d:%m}/{d:%d}/{_segment(event_id)}.jpg"


@dataclass(frozen=True, slots=True)
class SnapshotStats:
    submitted: int = 0
    written: int = 0
    failed: int = 0  # encode or store errors, logged
    dropped: int = 0  # new events refused because max_pending events were already waiting
    superseded: int = 0  # a waiting candidate replaced by a better one for the same event
    not_better: int = 0  # ignored: not better than the waiting or already written snapshot
    pending: int = 0


class SnapshotWriter:
    """Encodes and stores event snapshots on a worker thread; see the module docstring for the policy.

    Use as a context manager, or call :meth:`start` and :meth:`close`.
    """

    def __init__(
        self,
        uploads: UploadSpool,
        *,
        max_side: int | None = None,
        quality: int = 85,
        crop: bool = False,
        max_pending: int = 16,
        prefix: str = "snapshots",
        remember: int = 4096,
        redactor: Redactor | None = None,
    ) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self.uploads = uploads
        self.max_side = max_side
        self.quality = quality
        self.crop = crop
        self.max_pending = max_pending
        self.prefix = prefix
        self.redactor = redactor
        self._remember = remember
        self._cond = threading.Condition()
        self._pending: OrderedDict[str, Any] = OrderedDict()
        # event id -> (object key, confidence written or queued); keeps keys stable across
        # midnight and lets worse candidates be ignored. Bounded: old events fall out.
        self._known: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._busy = False
        self._inflight: tuple[str, float] | None = None  # (event id, confidence) being written now
        self._closing = False
        self._thread: threading.Thread | None = None
        self._counts = dict.fromkeys(
            ("submitted", "written", "failed", "dropped", "superseded", "not_better"), 0
        )
        self._last_drop_log = 0.0

    def __enter__(self) -> SnapshotWriter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> SnapshotWriter:
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="snapshot-writer", daemon=True)
                self._thread.start()
        return self

    def stats(self) -> SnapshotStats:
        with self._cond:
            return SnapshotStats(**self._counts, pending=len(self._pending))

    def submit(self, candidate: SnapshotCandidateLike) -> bool:
        """Queue the candidate without blocking; ``False`` when dropped or ignored (counted either way)."""
        event_id = candidate.event_id
        confidence = float(candidate.confidence)
        with self._cond:
            self._counts["submitted"] += 1
            if self._closing:
                self._counts["dropped"] += 1
                log.warning("snapshot for event %s dropped: writer is closed", event_id)
                return False
            waiting = self._pending.get(event_id)
            known = self._known.get(event_id)
            inflight = self._inflight
            best = max(
                float(waiting.confidence) if waiting is not None else -1.0,
                known[1] if known is not None else -1.0,
                inflight[1] if inflight is not None and inflight[0] == event_id else -1.0,
            )
            if confidence <= best:
                self._counts["not_better"] += 1
                return False
            if waiting is not None:
                self._pending[event_id] = candidate  # keeps its place in the queue
                self._counts["superseded"] += 1
                return True
            if len(self._pending) >= self.max_pending:
                self._counts["dropped"] += 1
                now = time.monotonic()
                if now - self._last_drop_log > 10.0:  # one line per 10 s, the counter has the rest
                    self._last_drop_log = now
                    log.warning(
                        "snapshot queue full (%d events waiting): dropped snapshot of event %s on %s; "
                        "%d dropped so far",
                        len(self._pending), event_id, candidate.camera, self._counts["dropped"],
                    )  # fmt: skip
                return False
            self._pending[event_id] = candidate
            self._cond.notify()
            return True

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued candidate is written (or failed); ``False`` on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (up to ``timeout`` seconds), then stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("snapshot writer still busy after %.1fs at close", timeout)
        with self._cond:
            if self._pending:
                self._counts["dropped"] += len(self._pending)
                log.warning("%d snapshots not written at close", len(self._pending))
                self._pending.clear()
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._busy = False
                self._cond.notify_all()  # for flush()
                self._cond.wait_for(lambda: self._pending or self._closing)
                if not self._pending:
                    return  # closing and drained
                event_id, candidate = self._pending.popitem(last=False)
                known = self._known.get(event_id)
                if known is not None:
                    key = known[0]
                else:
                    key = snapshot_key(candidate.camera, event_id, _when(candidate), self.prefix)
                self._busy = True
                self._inflight = (event_id, float(candidate.confidence))
            try:
                self._write(candidate, key)
            except Exception:
                log.exception("snapshot of event %s on %s not written to %s", event_id, candidate.camera, key)
                with self._cond:
                    self._inflight = None
                    self._counts["failed"] += 1
                    if known is None:
                        self._known[event_id] = (key, -1.0)  # keep the key: a retry lands in the same place
                        self._trim()
                continue
            with self._cond:
                self._inflight = None
                self._counts["written"] += 1
                self._known[event_id] = (key, float(candidate.confidence))
                self._known.move_to_end(event_id)
                self._trim()

    def _trim(self) -> None:
        while len(self._known) > self._remember:
            self._known.popitem(last=False)

    def _encode(self, candidate: Any, image: np.ndarray) -> bytes:
        return encode_snapshot(
            image,
            _box(candidate),
            candidate.class_name,
            float(candidate.confidence),
            max_side=self.max_side,
            quality=self.quality,
            crop=self.crop,
            other_boxes=getattr(candidate, "boxes", None),
        )

    def _write(self, candidate: Any, key: str) -> None:
        metadata = {
            "camera": _ascii(candidate.camera),
            "event-id": _ascii(candidate.event_id),
            "class": _ascii(candidate.class_name),
            "confidence": f"{float(candidate.confidence):.4f}",
        }
        evidence = bool(getattr(candidate, "evidence", True))
        image = candidate.image
        if self.redactor is not None:
            # The original goes first, beside the redacted picture (the spool keeps the order), and is
            # served only with a reason (audited); the redacted one is what the event links to.
            self.uploads.put(
                key=unredacted_key(key),
                data=self._encode(candidate, image),
                content_type="image/jpeg",
                metadata=metadata,
                link={"kind": "original", "event_id": candidate.event_id},
                evidence=evidence,
            )
            box = np.asarray(_box(candidate), dtype=np.float32).reshape(1, 4)
            others = getattr(candidate, "boxes", None)
            people = (
                box if others is None else np.vstack([box, np.asarray(others, np.float32).reshape(-1, 4)])
            )
            image = self.redactor.redact(image, people if candidate.class_name == "person" else people[:0])
        self.uploads.put(
            key=key,
            data=self._encode(candidate, image),
            content_type="image/jpeg",
            metadata=metadata,
            link={"kind": "snapshot", "event_id": candidate.event_id, "score": float(candidate.confidence)},
            evidence=evidence,
        )
