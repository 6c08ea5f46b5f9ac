"""Per-camera multi-object tracking: ByteTrack (``trackers.ByteTrackTracker``) behind a small wrapper.

The wrapper fixes what rules rely on:

- only confirmed tracks come out (ByteTrack reports ``tracker_id == -1`` for
  detections not yet matched ``minimum_consecutive_frames`` times in a row, and
  for low-score leftovers); rules never see them;
- ``confidence`` and ``data["class_name"]`` are those of the frame's detection
  matched to the track (the tracker indexes the input ``Detections``, so every
  extra array survives); a missing ``class_name`` is filled from ``class_id``;
- the lost-track buffer is configured in seconds and the tracker is driven by
  stream time (``pts``), so variable frame rates and dropped frames age tracks
  by real time, not by call count;
- output rows are sorted by ``tracker_id`` for deterministic rule order, and
  ids stay unique across ``reset`` (they continue after the last one given).

One object, one track, one class: boxes of one object under two classes (the
detector's NMS is per class) are reduced to the most confident before tracking
(``class_agnostic_nms_iou``); ByteTrack matches on boxes only, so a track keeps
its id when the detector's label flickers (car/truck); and each row carries the
track's class by vote over its life so far (each frame's label weighted by its
confidence), so counts and events name one class per object.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker

from events.config import TrackerConfig

log = logging.getLogger(__name__)

CLASS_NAME = "class_name"

# ByteTrack expresses its lost buffer in frames at 30 fps and converts it to
# seconds as lost_track_buffer / 30 (in timestamp mode) or to frames as
# ceil(frame_rate / 30 * lost_track_buffer) (in fixed-rate mode).
_BYTETRACK_REFERENCE_FPS = 30.0

# Stream time going back by more than this means the stream restarted; less is
# timestamp jitter.
PTS_BACKWARD_TOLERANCE_S = 1e-3


def empty_tracked() -> sv.Detections:
    """An empty ``Detections`` with every field the rules read."""
    empty = sv.Detections.empty()
    empty.confidence = np.zeros(0, dtype=np.float32)
    empty.class_id = np.zeros(0, dtype=int)
    empty.tracker_id = np.zeros(0, dtype=int)
    empty.data = {CLASS_NAME: np.zeros(0, dtype=str)}
    return empty


def _normalized(detections: sv.Detections) -> sv.Detections:
    """Detections with float32 boxes, a confidence, a class_id and a class_name array."""
    n = len(detections)
    if n == 0:
        return empty_tracked()
    dets = detections[:]  # a shallow copy: the caller's object is left as it was
    dets.xyxy = np.asarray(dets.xyxy, dtype=np.float32)
    if dets.confidence is None:
        dets.confidence = np.ones(n, dtype=np.float32)
    if dets.class_id is None:
        dets.class_id = np.full(n, -1, dtype=int)
    if CLASS_NAME not in dets.data:
        dets.data = {**dets.data, CLASS_NAME: dets.class_id.astype(str)}
    return dets


class ClassVotes:
    """Each track's class by vote: the label with the largest summed confidence over the frames
    the track was matched in. Tracks not matched for ``forget_after_s`` of stream time are dropped."""

    def __init__(self, forget_after_s: float) -> None:
        self.forget_after_s = forget_after_s
        self._votes: dict[int, dict[tuple[int, str], float]] = defaultdict(lambda: defaultdict(float))
        self._seen: dict[int, float] = {}

    def __len__(self) -> int:
        return len(self._votes)

    def vote(self, tracked: sv.Detections, pts: float) -> None:
        """Count this frame's labels, then set every row's class to its track's winner, in place."""
        names = tracked.data[CLASS_NAME]
        confidence = tracked.confidence if tracked.confidence is not None else np.ones(len(tracked))
        class_id = tracked.class_id if tracked.class_id is not None else np.full(len(tracked), -1)
        # object dtype: a fixed-width string array would cut a longer winning name.
        winners_id, winners_name = class_id.copy(), np.asarray(names).astype(object)
        for row, track in enumerate(tracked.tracker_id.tolist()):
            tally = self._votes[track]
            tally[(int(class_id[row]), str(names[row]))] += float(confidence[row])
            self._seen[track] = pts
            # max over (score, label): ties go the same way every time.
            (cid, name), _ = max(tally.items(), key=lambda kv: (kv[1], kv[0]))
            winners_id[row], winners_name[row] = cid, name
        tracked.class_id = winners_id
        tracked.data[CLASS_NAME] = winners_name
        stale = [t for t, seen in self._seen.items() if pts - seen > self.forget_after_s]
        for t in stale:
            del self._seen[t], self._votes[t]

    def clear(self) -> None:
        self._votes.clear()
        self._seen.clear()


class ObjectTracker:
    """One camera's tracker: detections in, confirmed tracked detections out.

    ``analysis_fps`` is the nominal rate of analysed frames (after ingest's rate
    control); the tracker uses it to scale its motion model and falls back on it
    for the first frame. Not thread-safe: one instance per camera loop.
    """

    def __init__(self, config: TrackerConfig, analysis_fps: float) -> None:
        if not math.isfinite(analysis_fps) or analysis_fps <= 0:
            raise ValueError(f"analysis_fps must be positive, got {analysis_fps}")
        self.config = config
        self.analysis_fps = float(analysis_fps)
        self._last_pts: float | None = None
        self._tracker = self._new_tracker()
        # ByteTrack numbers tracks from 0 again after a reset; shifting its ids
        # keeps them unique for the camera's whole life in this process, so an
        # event's track ids never name another session's object.
        self._id_offset = 0
        self._next_id = 0
        # A lost track can come back within lost_buffer_s; its votes are kept a little longer.
        self._votes = ClassVotes(forget_after_s=config.lost_buffer_s + 1.0)

    def _new_tracker(self) -> ByteTrackTracker:
        c = self.config
        return ByteTrackTracker(
            lost_track_buffer=round(c.lost_buffer_s * _BYTETRACK_REFERENCE_FPS),
            frame_rate=self.analysis_fps,
            track_activation_threshold=c.track_activation_threshold,
            minimum_consecutive_frames=c.minimum_consecutive_frames,
            minimum_iou_threshold=c.minimum_iou_threshold,
            high_conf_det_threshold=c.high_conf_det_threshold,
        )

    @property
    def active_tracks(self) -> int:
        """Tracks held now: new (not yet confirmed), confirmed, or lost but not yet given up.

        Motion gating skips the detector only when this is 0, so no held track
        ever goes without detections.
        """
        return len(self._tracker.tracks)

    def reset(self) -> None:
        """Forget every track (stream restart, camera back online); new ids continue after the old ones."""
        self._tracker = self._new_tracker()
        self._last_pts = None
        self._id_offset = self._next_id
        self._votes.clear()

    def update(self, detections: sv.Detections, pts: float) -> sv.Detections:
        """Track one analysed frame's detections at stream time ``pts`` (seconds).

        Returns only confirmed tracks (``tracker_id >= 0``), sorted by id, with
        the matched detection's box and confidence, and the track's voted
        class_id and class_name.
        """
        if self._last_pts is not None and pts < self._last_pts - PTS_BACKWARD_TOLERANCE_S:
            # The stream restarted (reconnect, pts wrap): old tracks are meaningless.
            log.info("stream time went back from %.3f to %.3f: tracker reset", self._last_pts, pts)
            self.reset()
        if self._last_pts is not None and pts <= self._last_pts:
            # ByteTrack skips a frame whose timestamp is not after the previous one
            # (and warns); a repeated or jittered pts is a decoder artefact, so
            # nudge it just past the previous one instead.
            pts = math.nextafter(self._last_pts, math.inf)
        self._last_pts = pts
        dets = _normalized(detections)
        iou = self.config.class_agnostic_nms_iou
        if iou is not None and len(dets) > 1:
            dets = dets.with_nms(threshold=iou, class_agnostic=True)
        tracked = self._tracker.update(dets, timestamp=pts)
        if len(tracked) == 0 or tracked.tracker_id is None:
            return empty_tracked()
        confirmed = tracked.tracker_id >= 0
        if not confirmed.any():
            return empty_tracked()
        tracked = tracked[confirmed]
        tracked = tracked[np.argsort(tracked.tracker_id, kind="stable")]
        tracked.tracker_id = tracked.tracker_id.astype(np.int64) + self._id_offset
        self._next_id = max(self._next_id, int(tracked.tracker_id[-1]) + 1)
        self._votes.vote(tracked, pts)
        return tracked
