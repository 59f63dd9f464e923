"""Grids: the store's regular lat-lon grid, regular Gaussian input grids, and regridding.

Latitudes run in the order the data has them (ERA5: north to south); longitudes increase from the
first point and may pass 360 (a regional grid across the Greenwich meridian, e.g. 330 .. 400.5).

A store's grid may also be regular in a rotated frame (a regional model's, e.g. COSMO-REA6): its
axes are then rotated latitudes and longitudes, which never wrap, and the geographic position of
a point depends on both its row and its column. Such a grid has no latitude per row, so `lats`
and `lons` refuse it (StoreError): code that takes them for geographic coordinates stops with
one clear line instead of putting a rotated domain somewhere near the equator. `lat_axis` /
`lon_axis` are the axes of either kind, `geographic()` the 2-D coordinates of every point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from atmorep_core.errors import StoreError
from atmorep_core.rotated_grid import RotatedGrid, rotate

_TOLERANCE_DEG = 1e-4  # GRIB stores degrees in millidegrees (GRIB1) or microdegrees (GRIB2)


@dataclass(frozen=True)
class LatLonGrid:
    """A regular latitude-longitude grid given by its first point, step and size per axis;
    with `south_pole`, regular in the frame of that rotated southern pole (module docstring)."""

    lat_first: float
    lat_step: float  # negative when latitudes run north to south
    nlat: int
    lon_first: float
    lon_step: float
    nlon: int
    south_pole: tuple[float, float] | None = None  # geographic (lat, lon) of the rotated pole

    @property
    def lat_axis(self) -> np.ndarray:
        """Latitude of each row: geographic, or rotated on a rotated grid."""
        return self.lat_first + self.lat_step * np.arange(self.nlat)

    @property
    def lon_axis(self) -> np.ndarray:
        """Longitude of each column: geographic, or rotated on a rotated grid."""
        return self.lon_first + self.lon_step * np.arange(self.nlon)

    @property
    def lats(self) -> np.ndarray:
        """Geographic latitude of each row; StoreError on a rotated grid, which has none."""
        self._refuse_if_rotated()
        return self.lat_axis

    @property
    def lons(self) -> np.ndarray:
        """Geographic longitude of each column; StoreError on a rotated grid, which has none."""
        self._refuse_if_rotated()
        return self.lon_axis

    def _refuse_if_rotated(self) -> None:
        if self.south_pole is not None:
            raise StoreError(
                f"the grid is a rotated-pole grid ({self.describe()}): it has no latitude per "
                "row or longitude per column, which this command needs; rotated-pole stores "
                "work with prepare, info, train, the products and evaluate, not with this yet"
            )

    @property
    def is_rotated(self) -> bool:
        return self.south_pole is not None

    def rotated(self) -> RotatedGrid:
        """The same grid as a `RotatedGrid` (the product writers' type); ValueError if regular."""
        if self.south_pole is None:
            raise ValueError("rotated(): the grid is a regular lat-lon grid")
        # Last row and column to GRIB2's microdegrees, as they came: no float noise of the step.
        return RotatedGrid(
            self.south_pole[0], self.south_pole[1], self.lat_first, self.lat_step,
            round(self.lat_last, 6), self.nlat, self.lon_first, round(self.lon_last, 6), self.nlon,
        )  # fmt: skip

    @classmethod
    def from_rotated(cls, grid: RotatedGrid) -> LatLonGrid:
        """A store grid from a rotated one; rows evenly spaced from its first to its last row
        (eccodes pins the last row there, whatever the coded increment says)."""
        rows = grid.rlats
        lat_step = (rows[-1] - rows[0]) / (grid.nj - 1) if grid.nj > 1 else grid.rlat_step
        return cls(
            grid.rlat_first, float(lat_step), grid.nj, grid.rlon_first, grid.rlon_step, grid.ni,
            (grid.south_pole_lat, grid.south_pole_lon),
        )  # fmt: skip

    def window_axes(
        self, row: int, column: int, shape: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Row and column coordinates of a (rows, columns) window from (row, column), as alpha
        takes them: longitudes go on past 360 across the date line; rotated ones on a rotated
        grid (which never wraps)."""
        lats = self.lat_axis[row : row + shape[0]]
        return lats, self.lon_first + self.lon_step * (column + np.arange(shape[1]))

    def geographic(self) -> tuple[np.ndarray, np.ndarray]:
        """Geographic latitudes and longitudes of every point, (nlat, nlon) each."""
        if self.south_pole is None:
            lats, lons = np.meshgrid(self.lat_axis, self.lon_axis, indexing="ij")
            return lats, lons
        rotated = self.rotated()
        return rotated.lats, rotated.lons

    def geographic_extent(self) -> dict[str, float] | None:
        """Where a rotated grid lies on the globe, south/north/west/east in degrees (its axes
        say only where it lies when rotated); None for a grid that is not rotated."""
        if not self.is_rotated:
            return None
        lats, lons = self.geographic()
        return {
            "south": float(lats.min()), "north": float(lats.max()),
            "west": float(lons.min()), "east": float(lons.max()),
        }  # fmt: skip

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
        if self.south_pole is not None:
            return False  # a regional model's grid: it never goes round the rotated equator
        return abs(self.nlon * self.lon_step - 360.0) < _TOLERANCE_DEG * self.nlon

    @property
    def resolution_deg(self) -> float:
        return abs(self.lon_step)

    def matches(self, other: LatLonGrid) -> bool:
        if (self.nlat, self.nlon) != (other.nlat, other.nlon):
            return False
        if not _same_pole(self.south_pole, other.south_pole):
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

    def same_frame(self, other: LatLonGrid) -> bool:
        """True when both grids are regular, or rotated about the same pole."""
        return _same_pole(self.south_pole, other.south_pole)

    def describe(self) -> str:
        if self.south_pole is not None:
            return self.rotated().describe()
        return (
            f"{self.nlat} x {self.nlon} points, {abs(self.lat_step):g} x {self.lon_step:g} deg, "
            f"lat {self.lat_first:g}..{self.lat_last:g}, lon {self.lon_first:g}..{self.lon_last:g}"
        )

    def to_attrs(self) -> dict[str, Any]:
        axes = {k: getattr(self, k) for k in _GRID_KEYS}
        if self.south_pole is None:
            return {"type": "regular_ll", **axes}
        return {"type": "rotated_ll", **axes, "south_pole": list(self.south_pole)}

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> LatLonGrid:
        kind = attrs.get("type")
        if kind not in ("regular_ll", "rotated_ll"):
            raise StoreError(f"unsupported store grid type {kind!r}")
        pole = attrs.get("south_pole") if kind == "rotated_ll" else None
        if kind == "rotated_ll" and (not isinstance(pole, list) or len(pole) != 2):
            raise StoreError(f"rotated store grid without its southern pole: {attrs}")
        south_pole = None if pole is None else (float(pole[0]), float(pole[1]))
        return cls(**{k: attrs[k] for k in _GRID_KEYS}, south_pole=south_pole)

    @classmethod
    def global_grid(cls, resolution_deg: float) -> LatLonGrid:
        """Global grid from 90 N to 90 S and from 0 E, poles included (ERA5's layout)."""
        per_quadrant = round(90.0 / resolution_deg)
        if per_quadrant < 1 or abs(per_quadrant * resolution_deg - 90.0) > 1e-9:
            raise ValueError(f"resolution {resolution_deg} deg does not divide 90 deg evenly")
        return cls(
            90.0, -resolution_deg, 2 * per_quadrant + 1, 0.0, resolution_deg, 4 * per_quadrant
        )


def grid_position(
    grid: LatLonGrid, lats: np.ndarray, lons: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Fractional (row, column) indices on `grid` of geographic points (any shape).

    Rows count from the first row, columns east of the first column, from half a step west of
    it (a point just west of the grid is at -0.4, not 359.6 degrees east), modulo 360 degrees:
    a point lies on the grid's cells where -0.5 <= index < n - 0.5 on both axes."""
    lat, lon = np.asarray(lats, np.float64), np.asarray(lons, np.float64)
    if grid.south_pole is not None:  # the grid's own (rotated) frame
        lat, lon = rotate(lat, lon, grid.south_pole[0], grid.south_pole[1])
    rows = (lat - grid.lat_first) / grid.lat_step
    half = abs(grid.lon_step) / 2
    columns = ((lon - grid.lon_first + half) % 360.0 - half) / grid.lon_step
    return rows, columns


_GRID_KEYS = ("lat_first", "lat_step", "nlat", "lon_first", "lon_step", "nlon")


def _same_pole(a: tuple[float, float] | None, b: tuple[float, float] | None) -> bool:
    if a is None or b is None:
        return a is b
    lon_offset = (a[1] - b[1]) % 360.0
    return (
        abs(a[0] - b[0]) < _TOLERANCE_DEG and min(lon_offset, 360.0 - lon_offset) < _TOLERANCE_DEG
    )


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

    def describe(self) -> str:
        return f"regular Gaussian N{len(self.lats) // 2}, {len(self.lats)} x {self.nlon} points"


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
