"""Where a report lands: the khu phố the resident chose, else the khu phố whose configured boundary
holds the point, else the ward queue (``reports.default_ward``, or the only ward)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from api.auth.config import KhuPhoConfig, WardConfig
from events.geometry import points_in_polygon


@dataclass(frozen=True, slots=True)
class Place:
    khu_pho: str | None
    ward: str | None


class Router:
    def __init__(
        self,
        khu_pho: Mapping[str, KhuPhoConfig],
        wards: Mapping[str, WardConfig],
        default_ward: str | None = None,
    ) -> None:
        if default_ward is not None and default_ward not in wards:
            raise ValueError(f"reports.default_ward: unknown ward {default_ward!r}")
        self.khu_pho = khu_pho
        self.wards = wards
        self.default_ward = default_ward or (next(iter(wards)) if len(wards) == 1 else None)
        # (lon, lat) polygons: x is longitude, y latitude, as in the geometry helpers' (x, y).
        self._outlines = {
            kp: np.asarray([(lon, lat) for lat, lon in conf.boundary], dtype=np.float64)
            for kp, conf in khu_pho.items()
            if conf.boundary
        }

    def place(self, *, chosen: str | None, lat: float | None, lon: float | None) -> Place:
        if chosen and chosen in self.khu_pho:
            return Place(chosen, self.khu_pho[chosen].ward)
        if lat is not None and lon is not None:
            point = np.asarray([[lon, lat]], dtype=np.float64)
            for kp, outline in self._outlines.items():
                if bool(points_in_polygon(point, outline)[0]):
                    return Place(kp, self.khu_pho[kp].ward)
        return Place(None, self.default_ward)
