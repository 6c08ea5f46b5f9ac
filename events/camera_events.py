"""One camera's events stage: tracker, rules and traffic counts behind one call per analysed frame."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import tzinfo
from zoneinfo import ZoneInfo

import supervision as sv

from events.config import DEFAULT_TIMEZONE, CameraEventsConfig, RuleConfig
from events.model import EventTransition, TrafficCount
from events.rules import Rule, build_rule
from events.rules.base import FrameContext, RuleOutput, SnapshotCandidate, to_datetime
from events.tracking import PTS_BACKWARD_TOLERANCE_S, ObjectTracker, empty_tracked
from events.traffic import TrafficAggregator
from ingest.frame import Frame

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, eq=False)
class ProcessResult:
    """What one frame (or a close) produced, in emission order.

    ``snapshots`` hold the frame's image by reference: frames must not be
    written to after they are handed to the processor. ``traffic_counts`` are
    increments of closed minutes (see ``events.traffic``).
    ``tracked_detections`` are the confirmed tracks of the frame (empty for a
    close), for overlays and the API.
    """

    transitions: list[EventTransition]
    snapshots: list[SnapshotCandidate]
    traffic_counts: list[TrafficCount]
    tracked_detections: sv.Detections


class CameraEventProcessor:
    """Runs the tracker and every rule of one camera on each analysed frame.

    ``analysis_fps`` is the nominal rate of the frames passed to ``process``;
    ``tz`` is the wall-clock time zone of event times, traffic minutes and
    active hours. Frames must come in stream order; stream time going back (a
    reconnect with restarted timestamps) ends every open event with
    ``end_reason: "stream_restart"`` and starts tracking afresh. Not
    thread-safe: one instance per camera, used by one loop.
    """

    def __init__(
        self,
        camera: str,
        rules_config: CameraEventsConfig | Sequence[RuleConfig],
        analysis_fps: float,
        tz: str | tzinfo = DEFAULT_TIMEZONE,
    ) -> None:
        if not isinstance(rules_config, CameraEventsConfig):
            rules_config = CameraEventsConfig(rules=list(rules_config))
        self.camera = camera
        self.config = rules_config
        self.tz: tzinfo = ZoneInfo(tz) if isinstance(tz, str) else tz
        self.tracker = ObjectTracker(rules_config.tracker, analysis_fps)
        self.rules: list[Rule] = [build_rule(rule, camera, self.tz) for rule in rules_config.rules]
        self.traffic = TrafficAggregator(self.tz)
        self._last_pts: float | None = None
        self._restart = RuleOutput()  # ends of a stream restart seen by track(), emitted by apply_rules()

    @property
    def open_event_ids(self) -> list[str]:
        return [event_id for rule in self.rules for event_id in rule.open_event_ids]

    def process(self, frame: Frame, detections: sv.Detections) -> ProcessResult:
        """Track one analysed frame's detections and run every rule on the confirmed tracks."""
        return self.apply_rules(frame, self.track(frame, detections))

    def track(self, frame: Frame, detections: sv.Detections) -> sv.Detections:
        """The tracker's half of :meth:`process`: the frame's confirmed tracks.

        Call :meth:`apply_rules` with them next, before the next frame's ``track``.
        """
        if frame.camera != self.camera:
            raise ValueError(f"frame of camera {frame.camera!r} given to the processor of {self.camera!r}")
        if self._last_pts is not None and frame.pts < self._last_pts - PTS_BACKWARD_TOLERANCE_S:
            log.warning(
                "camera %s: stream time went back from %.3f to %.3f, ending open events",
                self.camera,
                self._last_pts,
                frame.pts,
            )
            self._close_rules(self._restart, "stream_restart", None)
        self._last_pts = frame.pts
        return self.tracker.update(detections, frame.pts)

    def apply_rules(self, frame: Frame, tracked: sv.Detections) -> ProcessResult:
        """The rules' half of :meth:`process`, on the tracks :meth:`track` returned for ``frame``."""
        out, self._restart = self._restart, RuleOutput()
        ctx = FrameContext(self.camera, frame, tracked, self.tz)
        for rule in self.rules:
            rule.update(ctx, out)
            rule.split_overlong(ctx, out, self.config.max_event_s)
        self.traffic.add_all(out.crossings)
        return ProcessResult(
            transitions=out.transitions,
            snapshots=out.snapshots,
            # Counts are increments that storage adds up, so handing them over at once keeps the
            # current minute visible to signage instead of waiting for the minute to close.
            traffic_counts=self.traffic.flush_all(),
            tracked_detections=tracked,
        )

    def close(self, frame_time: float | None = None) -> ProcessResult:
        """End every open event and flush every traffic count (shutdown, camera offline).

        Each end is stamped with the last moment its condition held, as when
        the end grace runs out; ``frame_time`` (epoch seconds, e.g. when the
        camera was declared offline) is recorded in the end's ``data`` as
        ``closed_time``. The processor can be used again afterwards: tracking
        and rules start afresh, track ids continue.
        """
        out = RuleOutput()
        self._close_rules(out, "closed", frame_time)
        self._last_pts = None
        return ProcessResult(
            transitions=out.transitions,
            snapshots=out.snapshots,
            traffic_counts=self.traffic.flush_all(),
            tracked_detections=empty_tracked(),
        )

    def _close_rules(self, out: RuleOutput, reason: str, closed_at: float | None) -> None:
        extra = {} if closed_at is None else {"closed_time": to_datetime(closed_at, self.tz).isoformat()}
        for rule in self.rules:
            rule.close(out, reason, extra)
        self.tracker.reset()
