"""``reports:`` in ``khupho.yaml``: limits of the public report routes and how long evidence is kept."""

from __future__ import annotations

from pydantic import Field

from ingest.config import ConfigModel


class ReportsConfig(ConfigModel):
    enabled: bool = True
    # Photos: bigger files are refused before decoding; so are images of more pixels (decompression bombs).
    max_photo_mb: float = Field(5.0, gt=0, le=50)
    max_photo_pixels: int = Field(40_000_000, ge=10_000)
    photo_max_side: int = Field(1600, ge=320, le=8000)  # stored photos are shrunk to this longer side
    max_description: int = Field(4000, ge=100, le=4000)
    # Per client address: reports filed per hour, and requests to any public report route per minute.
    submits_per_hour: int = Field(5, ge=1)
    requests_per_minute: int = Field(60, ge=1)
    # Per tracking code: look-ups and reopens per hour (a shared code cannot be used to flood).
    token_uses_per_hour: int = Field(60, ge=1)
    # Open (not resolved or rejected) reports one contact (e-mail or phone) may have at once.
    max_open_per_contact: int = Field(3, ge=1)
    reopen_days: float = Field(14, gt=0)  # a resident may reopen a resolved report this long after
    # Camera events linked as evidence stay locked (exempt from retention) until the report has been
    # closed this long.
    evidence_keep_days: float = Field(90, ge=0)
    # Reports outside every configured khu phố boundary go to this ward's queue (default: the only ward).
    default_ward: str | None = None
