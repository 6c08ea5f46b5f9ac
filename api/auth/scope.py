"""Which cameras a principal may see: camera -> khu phố -> ward, from the configuration."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from api.auth.config import KhuPhoConfig, WardConfig
from api.auth.principal import Principal, Role


@dataclass(frozen=True)
class ScopeIndex:
    wards: Mapping[str, WardConfig] = field(default_factory=dict)
    khu_pho: Mapping[str, KhuPhoConfig] = field(default_factory=dict)
    camera_khu_pho: Mapping[str, str | None] = field(default_factory=dict)  # camera id -> khu phố id

    def cameras_for(self, principal: Principal) -> frozenset[str] | None:
        """The camera ids the principal may see; ``None`` means every camera (admins)."""
        if principal.role is Role.ADMIN:
            return None
        if principal.role is Role.METRICS:
            return frozenset()
        if principal.role is Role.SUPERVISOR:
            places = {kp for kp, conf in self.khu_pho.items() if conf.ward in principal.scopes}
        else:
            places = set(principal.scopes)
        return frozenset(cam for cam, kp in self.camera_khu_pho.items() if kp in places)

    def may_see(self, principal: Principal, camera: str) -> bool:
        allowed = self.cameras_for(principal)
        return allowed is None or camera in allowed

    def check_scopes(self, role: Role, scopes: list[str]) -> None:
        """Raise ``ValueError`` when the scopes do not fit the role (unknown place, none given)."""
        if role in (Role.ADMIN, Role.METRICS):
            if scopes:
                raise ValueError(f"role {role} takes no scopes")
            return
        known = self.wards if role is Role.SUPERVISOR else self.khu_pho
        what = "ward" if role is Role.SUPERVISOR else "khu phố"
        if not scopes:
            raise ValueError(f"role {role} needs at least one {what}")
        unknown = [s for s in scopes if s not in known]
        if unknown:
            raise ValueError(f"unknown {what}: {', '.join(unknown)}")

    def place_names(self, camera: str) -> tuple[str, str]:
        """(khu phố name, ward name) of a camera, empty when it has none."""
        kp = self.camera_khu_pho.get(camera)
        if kp is None or kp not in self.khu_pho:
            return "", ""
        ward = self.wards.get(self.khu_pho[kp].ward)
        return self.khu_pho[kp].name, ward.name if ward else ""
