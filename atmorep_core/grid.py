"""Grids: the store's regular lat-lon grid, regular Gaussian input grids, and regridding.

Latitudes run in the order the data has them (ERA5: north to south); longitudes increase from the
first point and may pass 360 (a regional grid across the Greenwich meridian, e.g. 330 .. 400.5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from atmorep_core.errors import StoreError

_TOLERANCE_DEG = 1e-4  # GRIB stores degrees in millidegrees (GRIB1) or microdegrees (GRIB2)


@dataclass(frozen=True)
class LatLonGrid:
    """A regular latitude-longitude grid given by its first point, step and size per axis."""

    lat_first: float
    lat_step: float  # negative when latitudes run north to south
    nlat: int
    lon_first: float
    lon_step: float
    nlon: int

    @property
    def lats(self) -> np.ndarray:
        return self.lat_first + self.lat_step * np.arange(self.nlat)

    @property
    def lons(self) -> np.ndarray:
        return self.lon_first + self.lon_step * np.arange(self.nlon)

    @property
    def lat_last(self) -> float:
        return self.lat_first + self.lat_step * (self.nlat - 1)

    @property
    def lon_last(self) -> float:
        return self.lon_first + self.lon_step * (self.nlon - 1)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.nlat, self.nlon)

    @property
    def is_global_in_lon(self) -> bool:
        """True when the longitudes close the circle, so neighbourhoods wrap around."""
        return abs(self.nlon * self.lon_step - 360.0) < _TOLERANCE_DEG * self.nlon

    @property
    def resolution_deg(self) -> float:
        return abs(self.lon_step)

    def matches(self, other: LatLonGrid) -> bool:
        if (self.nlat, self.nlon) != (other.nlat, other.nlon):
            return False
        pairs = [
            (self.lat_first, other.lat_first),
            (self.lat_step, other.lat_step),
            (self.lon_step, other.lon_step),
        ]
        lon_offset = (self.lon_first - other.lon_first) % 360.0
        return (
            all(abs(a - b) < _TOLERANCE_DEG for a, b in pairs)
            and min(lon_offset, 360.0 - lon_offset) < _TOLERANCE_DEG
        )

    def describe(self) -> str:
        lats, lons = self.lats, self.lons
        return (
            f"{self.nlat} x {self.nlon} points, {abs(self.lat_step):g} x {self.lon_step:g} deg, "
            f"lat {lats[0]:g}..{lats[-1]:g}, lon {lons[0]:g}..{lons[-1]:g}"
        )

    def to_attrs(self) -> dict[str, Any]:
        return {"type": "regular_ll", **{k: getattr(self, k) for k in _GRID_KEYS}}

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> LatLonGrid:
        if attrs.get("type") != "regular_ll":
            raise StoreError(f"unsupported store grid type {attrs.get('type')!r}")
        return cls(**{k: attrs[k] for k in _GRID_KEYS})

    @classmethod
    def global_grid(cls, resolution_deg: float) -> LatLonGrid:
        """Global grid from 90 N to 90 S and from 0 E, poles included (ERA5's layout)."""
        per_quadrant = round(90.0 / resolution_deg)
        if per_quadrant < 1 or abs(per_quadrant * resolution_deg - 90.0) > 1e-9:
            raise ValueError(f"resolution {resolution_deg} deg does not divide 90 deg evenly")
        return cls(
            90.0, -resolution_deg, 2 * per_quadrant + 1, 0.0, resolution_deg, 4 * per_quadrant
        )


_GRID_KEYS = ("lat_first", "lat_step", "nlat", "lon_first", "lon_step", "nlon")


@dataclass(frozen=True)
class GaussianGrid:
    """A regular (full) Gaussian grid: N latitude rows per hemisphere, 4N equally spaced lons."""

    lats: np.ndarray  # as in the file, usually north to south
    lon_first: float
    nlon: int

    @property
    def lons(self) -> np.ndarray:
        return self.lon_first + (360.0 / self.nlon) * np.arange(self.nlon)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.lats), self.nlon)


def gaussian_latitudes(n: int) -> np.ndarray:
    """The 2N Gaussian latitudes in degrees, north to south (roots of the Legendre polynomial)."""
    nodes, _ = np.polynomial.legendre.leggauss(2 * n)
    return np.degrees(np.arcsin(nodes))[::-1].copy()


class GaussianToLatLon:
    """Bilinear regridding of a global regular Gaussian field onto a regular lat-lon grid.

    The field is padded with a wrap-around column and with pole rows set to the zonal mean of the
    nearest Gaussian row, since Gaussian grids never hold the poles themselves.
    """

    def __init__(self, source: GaussianGrid, target: LatLonGrid) -> None:
        self.source, self.target = source, target
        order = np.argsort(source.lats)
        self._row_order = order
        self._lats = np.concatenate([[-90.0], source.lats[order], [90.0]])
        self._lons = np.concatenate([source.lons, [source.lons[0] + 360.0]])
        target_lat, target_lon = np.meshgrid(target.lats, target.lons, indexing="ij")
        wrapped_lon = source.lons[0] + (target_lon - source.lons[0]) % 360.0
        self._points = np.stack([target_lat.ravel(), wrapped_lon.ravel()], axis=-1)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """Regrid one (nlat_gauss, nlon_gauss) field; returns (nlat, nlon) on the target grid."""
        from scipy.interpolate import RegularGridInterpolator  # slow import, rarely needed

        rows = values[self._row_order]
        south = np.full((1, rows.shape[1]), rows[0].mean())
        north = np.full((1, rows.shape[1]), rows[-1].mean())
        padded = np.concatenate([south, rows, north], axis=0)
        padded = np.concatenate([padded, padded[:, :1]], axis=1)
        interpolate = RegularGridInterpolator((self._lats, self._lons), padded, method="linear")
        return interpolate(self._points).reshape(self.target.shape)
