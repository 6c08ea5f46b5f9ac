"""Configuration of places (wards, khu phố) and of logins, as they appear in ``khupho.yaml``::

wards:
  ben_nghe: {name: "Phường Bến Nghé"}
khu_pho:
  kp1: {name: "Khu phố 1", ward: ben_nghe}
auth:
  session_ttl_s: 43200
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

PlaceId = str


class WardConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)  # shown in the console, e.g. "Phường Bến Nghé"


class KhuPhoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)  # e.g. "Khu phố 1"
    ward: PlaceId
    # Optional outline as [latitude, longitude] points: residents' reports located inside land here.
    boundary: list[tuple[float, float]] | None = Field(None, min_length=3, max_length=2000)


class AuthConfig(BaseModel):
    """Sessions and the login rate limit."""

    model_config = ConfigDict(extra="forbid")

    session_ttl_s: float = Field(12 * 3600, gt=0)  # a session ends this long after login
    login_window_s: float = Field(900, gt=0)  # failed logins are counted over this window
    max_failures_per_account: int = Field(5, ge=1)
    max_failures_per_address: int = Field(20, ge=1)
    # Over TLS (or behind a TLS proxy) cookies carry Secure; detected per request, forced here.
    secure_cookies: bool = False
