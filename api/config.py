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
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from detectors.config import DetectorConfig
from events.config import CameraEventsConfig, EventsConfig
from events.storage_config import StorageConfig
from ingest.config import CameraSourceConfig
from ingest.health import HealthConfig
from ingest.motion import MotionConfig


class ConfigError(ValueError):
    """The configuration cannot be used; the message has one line per problem."""


class ReplayConfig(BaseModel):
    """A recorded file played as a camera at its real frame rate (demo, tests, capacity benchmarks)."""

    model_config = ConfigDict(extra="forbid")

    path: Path
    analysis_fps: float | None = Field(5.0, gt=0)
    speed: float = Field(1.0, gt=0, le=100)
    loop: bool = True


class CameraConfig(BaseModel):
    """One camera: where its picture comes from, its health checks, tracker and rules."""

    model_config = ConfigDict(extra="forbid")

    name: str = ""
    enabled: bool = True
    source: CameraSourceConfig | None = None  # a live camera (rtsp://...)
    replay: ReplayConfig | None = None  # or a recorded file
    health: HealthConfig | None = Field(default_factory=HealthConfig)  # null disables health checks
    # Skip the detector on still frames while nothing is tracked; null runs it on every analysed frame.
    motion: MotionConfig | None = Field(default_factory=MotionConfig)
    events: CameraEventsConfig = Field(default_factory=CameraEventsConfig)

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.source is None) == (self.replay is None):
            raise ValueError("give exactly one of 'source' (a live camera URL) or 'replay' (a recorded file)")
        return self

    @property
    def analysis_fps(self) -> float:
        fps = self.source.analysis_fps if self.source else self.replay.analysis_fps  # type: ignore[union-attr]
        return fps or 25.0


class BatchingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_batch: int = Field(8, ge=1, le=256)
    max_wait_ms: float = Field(20.0, ge=0, le=1000)


class ApiConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)  # 0 picks a free port
    sse_heartbeat_s: float = Field(15.0, gt=0)


class KhuphoConfig(BaseModel):
    """Everything ``khupho run`` needs."""

    model_config = ConfigDict(extra="forbid")

    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    cameras: dict[str, CameraConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _camera_ids(self) -> Self:
        for cam_id in self.cameras:
            if not cam_id or not all(c.isalnum() or c in "-_." for c in cam_id):
                raise ValueError(f"camera id {cam_id!r}: use letters, digits, '-', '_' or '.'")
        return self


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
    storage.database.path = base / storage.database.path
    if hasattr(storage.objects, "root"):
        storage.objects.root = base / storage.objects.root  # type: ignore[union-attr]
    for cam in config.cameras.values():
        if cam.replay is not None:
            cam.replay.path = base / cam.replay.path
    model = config.detector.model
    if model is not None and (base / model).is_file():
        config.detector.model = base / model
    return config
