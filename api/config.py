"""The root of the configuration tree (``khupho.yaml``), composed of each stage's own models.

Validated once at start-up; a wrong field is reported as one line per problem
naming the camera and the field path, e.g.
``cameras.gate.rules.0.polygon: polygon needs at least 3 points``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import Field, ValidationError, model_validator

from api.auth.config import AuthConfig, KhuPhoConfig, WardConfig
from api.reports.config import ReportsConfig
from cluster.config import ClusterConfig
from detectors.config import DetectorConfig
from events.config import EventsConfig
from events.publish.config import PublishConfig
from events.storage.config import PostgresStoreConfig, SqliteStoreConfig, StorageConfig
from events.traffic_config import TrafficConfig
from ingest.config import ConfigModel
from pipeline.config import CameraConfig


class ConfigError(ValueError):
    """The configuration cannot be used; the message has one line per problem."""


class BatchingConfig(ConfigModel):
    """How the batcher gathers the cameras' frames into one detector call (its size is
    ``detector.max_batch``)."""

    max_wait_ms: float = Field(20.0, ge=0, le=1000, description="longest wait for a batch to fill")


class ApiConfig(ConfigModel):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)  # 0 picks a free port
    sse_heartbeat_s: float = Field(15.0, gt=0)


class PrivacyConfig(ConfigModel):
    # Snapshots are stored redacted (YuNet faces and person heads blurred); the original beside it
    # is served only to accounts with the unredacted permission, with a reason, audited.
    blur_faces: bool = True
    face_model: Path | None = None  # default: face_detection_yunet.onnx in $KHUPHO_MODELS_DIR


class ReviewConfig(ConfigModel):
    # Events of one camera and rule starting within this long of an item's last activity join it.
    merge_gap_s: float = Field(60.0, ge=0)


class KhuphoConfig(ConfigModel):
    """Everything ``khupho run`` needs."""

    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    review: ReviewConfig = Field(default_factory=ReviewConfig)
    reports: ReportsConfig = Field(default_factory=ReportsConfig)
    wards: dict[str, WardConfig] = Field(default_factory=dict)
    khu_pho: dict[str, KhuPhoConfig] = Field(default_factory=dict)
    traffic: TrafficConfig = Field(default_factory=TrafficConfig)  # road segments for signage and apps
    publish: PublishConfig = Field(default_factory=PublishConfig)  # MQTT and webhooks
    cameras: dict[str, CameraConfig] = Field(min_length=1)
    # Run the cameras on a Ray cluster (cluster/); null: everything in this process.
    cluster: ClusterConfig | None = None
    # SIGTERM/SIGINT: how long cameras, the event writer and snapshot uploads get to finish.
    shutdown_timeout_s: float = Field(10.0, gt=0, le=600)

    @model_validator(mode="after")
    def _camera_ids(self) -> Self:
        for cam_id in self.cameras:
            if not cam_id or not all(c.isalnum() or c in "-_." for c in cam_id):
                raise ValueError(f"camera id {cam_id!r}: use letters, digits, '-', '_' or '.'")
        for kp_id, kp in self.khu_pho.items():
            if kp.ward not in self.wards:
                raise ValueError(f"khu_pho.{kp_id}.ward: unknown ward {kp.ward!r}")
        if self.reports.default_ward is not None and self.reports.default_ward not in self.wards:
            raise ValueError(f"reports.default_ward: unknown ward {self.reports.default_ward!r}")
        for cam_id, cam in self.cameras.items():
            if cam.khu_pho is not None and cam.khu_pho not in self.khu_pho:
                raise ValueError(f"cameras.{cam_id}.khu_pho: unknown khu phố {cam.khu_pho!r}")
            if any(len(p) < 3 for p in cam.privacy_masks):
                raise ValueError(f"cameras.{cam_id}.privacy_masks: a polygon needs at least 3 points")
        if self.cluster is not None:
            # Every node writes events and media: both stores must be shared servers.
            if not isinstance(self.storage.database, PostgresStoreConfig):
                raise ValueError("cluster: needs storage.database.type: postgres (shared by every node)")
            if getattr(self.storage.objects, "type", None) != "s3":
                raise ValueError("cluster: needs storage.objects.type: s3 (shared by every node)")
        lanes = {
            f"{cam}/{lane}" for cam, names in self.traffic_lanes(enabled_only=False).items() for lane in names
        }
        for seg in self.traffic.segments:
            missing = [ref for ref in seg.lanes if ref not in lanes]
            if missing:
                raise ValueError(f"traffic segment {seg.id!r}: no such camera lane: {', '.join(missing)}")
        return self

    def traffic_lanes(self, *, enabled_only: bool = True) -> dict[str, list[str]]:
        """Camera id -> its lane names, for every (enabled) camera with traffic analysis."""
        return {
            cam_id: [lane.name for lane in cam.traffic.lanes]
            for cam_id, cam in self.cameras.items()
            if cam.traffic is not None and (cam.enabled or not enabled_only)
        }


def format_errors(exc: ValidationError, source: str) -> str:
    """One line per problem: ``<file>: cameras.gate.rules.0.polygon: <message>``, without echoing secrets."""
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        path = ".".join(str(p) for p in err["loc"]) or "(root)"
        lines.append(f"{source}: {path}: {err['msg']}")
    return "\n".join(lines)


def parse_config(data: Any, source: str = "config") -> KhuphoConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return KhuphoConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, source)) from None


def load_config(path: str | os.PathLike[str]) -> KhuphoConfig:
    """Read and validate a YAML config file; relative paths in it are relative to the file."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{p}:{where} not valid YAML ({getattr(exc, 'problem', exc)})") from None
    return _anchor_paths(parse_config(data, str(p)), p.resolve().parent)


def _anchor_paths(config: KhuphoConfig, base: Path) -> KhuphoConfig:
    """Make the file's relative paths relative to the file, not to wherever khupho was started."""
    storage = config.storage
    objects = storage.objects
    if hasattr(objects, "root"):
        objects = objects.model_copy(update={"root": base / objects.root})
    database = storage.database
    if isinstance(database, SqliteStoreConfig):  # a PostgreSQL database has no path
        database = database.model_copy(update={"path": base / database.path})
    storage = storage.model_copy(
        update={
            "database": database,
            "objects": objects,
            "state_dir": None if storage.state_dir is None else base / storage.state_dir,
        }
    )
    cameras = {
        cam_id: cam
        if cam.replay is None
        else cam.model_copy(update={"replay": cam.replay.model_copy(update={"path": base / cam.replay.path})})
        for cam_id, cam in config.cameras.items()
    }
    detector = config.detector
    model = detector.model
    if model is not None and (base / model).is_file():
        detector = detector.model_copy(update={"model": base / model})
    privacy = config.privacy
    if privacy.face_model is not None:
        privacy = privacy.model_copy(update={"face_model": base / privacy.face_model})
    return config.model_copy(
        update={"storage": storage, "cameras": cameras, "detector": detector, "privacy": privacy}
    )
