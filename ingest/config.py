"""Configuration of one camera source (the ingest part of the config tree)."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ingest.decode import DEFAULT_MAX_PIXELS
from ingest.urls import mask_url


class ConfigModel(BaseModel):
    """The base of every model of the configuration tree, in every stage (ingest is the first
    stage, so every later one may import it): unknown fields are errors, values are frozen
    once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


SUPPORTED_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "srt", "udp", "rtp", "tcp", "http", "https", "file")


class BackoffConfig(ConfigModel):
    """Delay between reconnect attempts: ``initial_s * multiplier**n``, capped at ``max_s``, ±jitter."""

    initial_s: float = Field(1.0, gt=0)
    max_s: float = Field(30.0, gt=0)
    multiplier: float = Field(2.0, ge=1.0)
    # Fraction of the delay drawn at random (0.2: ±20 %) so cameras behind one switch that
    # dropped together do not hammer the NVR in lockstep.
    jitter: float = Field(0.2, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _cap_not_below_start(self) -> Self:
        if self.max_s < self.initial_s:
            raise ValueError(f"max_s ({self.max_s}) must be >= initial_s ({self.initial_s})")
        return self


class CameraSourceConfig(ConfigModel):
    """How to read one live camera. The camera's name is its key in the cameras mapping.

    ``url`` may carry credentials; it is excluded from ``repr`` and validation errors never echo
    it (``hide_input_in_errors``). Use ``masked_url`` to show it.
    """

    model_config = ConfigDict(hide_input_in_errors=True)

    url: str = Field(min_length=1, repr=False)
    transport: Literal["tcp", "udp"] = "tcp"
    open_timeout_s: float = Field(5.0, gt=0)
    # A socket silent this long is a dead connection (PyAV's read timeout).
    read_timeout_s: float = Field(5.0, gt=0)
    # Data arriving but no picture decoded for this long (garbage, audio only, a stuck encoder):
    # reconnect. Must exceed the camera's keyframe interval, since a fresh connection waits
    # for a keyframe (Frigate uses 20 s as well).
    stall_timeout_s: float = Field(20.0, gt=0)
    # Time the camera may spend reconnecting before it is reported offline.
    offline_grace_s: float = Field(10.0, ge=0)
    analysis_fps: float | None = Field(5.0, gt=0)
    decode_keyframes_only: bool = False
    # Per camera; 0 lets FFmpeg use one per core, which is too many with dozens of cameras.
    decode_threads: int = Field(2, ge=0)
    queue_size: int = Field(4, ge=1)
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, gt=0)
    # Fast start: FFmpeg probes until either limit is reached. 0.1 s / 32 KiB opens a camera in
    # 0.06-0.3 s on loopback (FFmpeg's defaults, 5 s / 5 MB: about 1.2 s). Note FFmpeg reads an
    # analyzeduration of 0 as "use the default", hence gt=0.
    analyzeduration_us: int = Field(100_000, gt=0)
    probesize: int = Field(32_768, ge=32)
    backoff: BackoffConfig = BackoffConfig()

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        scheme, sep, _rest = url.partition("://")
        if not sep or scheme.lower() not in SUPPORTED_SCHEMES:
            raise ValueError(
                f"unsupported camera URL {mask_url(url)!r}: expected one of "
                + ", ".join(f"{s}://" for s in SUPPORTED_SCHEMES)
            )
        return url

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    def stream_options(self) -> dict[str, str]:
        """FFmpeg options for a fast, robust start of the stream."""
        return {
            "rtsp_transport": self.transport,
            # Probing only fills in what the SDP leaves out: keep it short so (re)connecting takes
            # a tenth of a second instead of FFmpeg's default of over a second.
            "analyzeduration": str(self.analyzeduration_us),
            "probesize": str(self.probesize),
        }
