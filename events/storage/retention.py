"""Retention: events, their pictures and clips, and traffic counts are deleted when their time is up,
and the oldest media go first when the disk fills.

Ages are per event type and per camera (a camera's own settings win over the
defaults). An event's rows and its media go together: media first (an object
that cannot be deleted now keeps its event for the next run, so nothing is
left pointing nowhere and no object is orphaned). Events under an evidence
lock (linked to a resident's report, or locked by staff) are never purged.
Every purge is counted and logged.
"""

from __future__ import annotations

import logging
import shutil
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import Field, model_validator

from events.model import Event, EventType
from events.storage.objects import ObjectStore
from events.storage.snapshot import unredacted_key
from events.storage.store import EventStore, StorageError
from ingest.config import ConfigModel

log = logging.getLogger(__name__)

PAGE = 500  # events examined per query


class CameraRetention(ConfigModel):
    """One camera's own ages, overriding the defaults (null keeps the default)."""

    events_days: float | None = Field(None, gt=0)
    by_type: dict[EventType, float] = Field(default_factory=dict)


class DiskWatermark(ConfigModel):
    """Below ``min_free_pct`` free space on the media disk, delete the oldest unlocked media until
    ``target_free_pct`` is free again (local object storage only)."""

    min_free_pct: float = Field(10.0, ge=0, lt=100)
    target_free_pct: float = Field(15.0, gt=0, lt=100)

    @model_validator(mode="after")
    def _target_above_min(self) -> DiskWatermark:
        if self.target_free_pct < self.min_free_pct:
            raise ValueError("target_free_pct must be at least min_free_pct")
        return self


class RetentionConfig(ConfigModel):
    events_days: float = Field(30.0, gt=0)  # every event type not listed in by_type
    by_type: dict[EventType, float] = Field(default_factory=dict)  # e.g. {line_crossing: 7}
    cameras: dict[str, CameraRetention] = Field(default_factory=dict)
    traffic_days: float = Field(365.0, gt=0)  # per-minute counting data
    interval_s: float = Field(3600.0, gt=0)  # how often the purge runs
    disk: DiskWatermark | None = Field(default_factory=DiskWatermark)  # null: no watermark

    def days(self, camera: str | None, type_: EventType) -> float:
        own = self.cameras.get(camera) if camera is not None else None
        if own is not None and type_ in own.by_type:
            return own.by_type[type_]
        if type_ in self.by_type:
            return self.by_type[type_]
        if own is not None and own.events_days is not None:
            return own.events_days
        return self.events_days


@dataclass(slots=True)
class PurgeReport:
    events: int = 0
    media: int = 0
    traffic_rows: int = 0
    watermark_media: int = 0
    kept_for_retry: int = 0  # expired, but a media object could not be deleted yet
    by_type: dict[str, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.events or self.media or self.traffic_rows or self.watermark_media)


class RetentionJob:
    """Runs the purge every ``interval_s`` on a thread of its own (and once via :meth:`run_once`)."""

    def __init__(
        self,
        store: EventStore,
        objects: ObjectStore,
        config: RetentionConfig,
        *,
        cameras: list[str] | None = None,
        media_dir: Path | None = None,
    ) -> None:
        self.store = store
        self.cameras = list(cameras or [])  # the configured cameras, for their own ages
        self.objects = objects
        self.config = config
        self.media_dir = media_dir  # the local object store's root, for the disk watermark
        self.totals = PurgeReport()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="retention", daemon=True)

    def start(self) -> RetentionJob:
        self._thread.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        """Stop; a purge in progress stops at its next page (its deletes so far stand)."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except StorageError as exc:
                log.error("retention purge failed, trying again in %.0f s: %s", self.config.interval_s, exc)
            except Exception:
                log.exception("retention purge failed, trying again in %.0f s", self.config.interval_s)
            self._stop.wait(self.config.interval_s)

    def run_once(self, now: datetime | None = None) -> PurgeReport:
        now = now or datetime.now(UTC)
        report = PurgeReport()
        self._purge_events(now, report)
        report.traffic_rows = self._purge_traffic(now)
        report.watermark_media = self._watermark()
        self.store.forget_batches(now - timedelta(days=1))  # journal replays are long over
        if report:
            log.info(
                "retention: deleted %d events (%s) with %d media, %d traffic rows; %d media for disk space%s",
                report.events,
                ", ".join(f"{k} {v}" for k, v in sorted(report.by_type.items())) or "none",
                report.media,
                report.traffic_rows,
                report.watermark_media,
                f"; {report.kept_for_retry} kept until their media can be deleted"
                if report.kept_for_retry
                else "",
            )
        for name in ("events", "media", "traffic_rows", "watermark_media", "kept_for_retry"):
            setattr(self.totals, name, getattr(self.totals, name) + getattr(report, name))
        for k, v in report.by_type.items():
            self.totals.by_type[k] = self.totals.by_type.get(k, 0) + v
        return report

    # -- events --------------------------------------------------------------------------------------------

    def _purge_events(self, now: datetime, report: PurgeReport) -> None:
        cfg = self.config
        for type_ in EventType:
            default = cfg.days(None, type_)
            own = {cam: cfg.days(cam, type_) for cam in self.cameras}
            if all(days == default for days in own.values()):
                self._purge_pass(now - timedelta(days=default), type_, None, report)
                continue
            # Cameras with ages of their own: one pass each, so a long-kept camera's events never
            # hold up another's; then the cameras no longer configured, at the default age.
            for cam, days in own.items():
                self._purge_pass(now - timedelta(days=days), type_, cam, report)
            self._purge_pass(now - timedelta(days=default), type_, None, report, skip=set(own))

    def _purge_pass(
        self,
        cutoff: datetime,
        type_: EventType,
        camera: str | None,
        report: PurgeReport,
        skip: set[str] = frozenset(),  # type: ignore[assignment]
    ) -> None:
        while not self._stop.is_set():
            candidates = self.store.expired(cutoff, camera=camera, types=[type_], limit=PAGE)
            due = [e for e in candidates if e.camera not in skip]
            deleted = self._delete(due, report) if due else 0
            if len(candidates) < PAGE or deleted == 0:
                return

    def _delete(self, events: list[Event], report: PurgeReport) -> int:
        ready = []
        for ev in events:
            current = self.store.get(ev.id)
            if current is None or current.locked:
                continue  # locked (or gone) since the query: its media stay
            try:
                removed = self._delete_media(ev)
            except (StorageError, OSError) as exc:
                report.kept_for_retry += 1
                log.warning(
                    "retention: media of event %s not deleted yet (%s): kept for the next run", ev.id, exc
                )
                continue
            report.media += removed
            ready.append(ev)
        deleted = self.store.delete_events([e.id for e in ready])
        report.events += deleted
        for ev in ready:
            report.by_type[ev.type.value] = report.by_type.get(ev.type.value, 0) + 1
        return deleted

    def _delete_media(self, ev: Event) -> int:
        keys = [k for k in (ev.snapshot, ev.clip) if k]
        for key in keys:
            self.objects.delete(key)
        if ev.snapshot:
            # The unredacted original kept beside a face-blurred snapshot goes with it.
            self.objects.delete(unredacted_key(ev.snapshot))
        return len(keys)

    def _purge_traffic(self, now: datetime) -> int:
        return self.store.delete_traffic(now - timedelta(days=self.config.traffic_days))

    # -- disk watermark ------------------------------------------------------------------------------------

    def _watermark(self) -> int:
        disk = self.config.disk
        if disk is None or self.media_dir is None:
            return 0
        if _free_pct(self.media_dir) >= disk.min_free_pct:
            return 0
        freed = 0
        started = _free_pct(self.media_dir)
        while _free_pct(self.media_dir) < disk.target_free_pct:
            events = self.store.oldest_with_media(50)
            if not events:
                log.error(
                    "disk %s is %.1f %% free and only locked or open events hold media: nothing to delete",
                    self.media_dir,
                    _free_pct(self.media_dir),
                )
                break
            for ev in events:
                current = self.store.get(ev.id)
                if current is None or current.locked:
                    continue
                freed += self._delete_media(ev)
                self.store.clear_media(ev.id)
                if _free_pct(self.media_dir) >= disk.target_free_pct:
                    break
        log.warning(
            "disk %s was %.1f %% free (below %.0f %%): deleted the %d oldest unlocked media; %.1f %% free",
            self.media_dir,
            started,
            disk.min_free_pct,
            freed,
            _free_pct(self.media_dir),
        )
        return freed


def _free_pct(path: Path) -> float:
    usage = shutil.disk_usage(path)
    return 100.0 * usage.free / usage.total
