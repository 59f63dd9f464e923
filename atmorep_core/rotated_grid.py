"""Rotated-pole regular grids (GRIB gridType "rotated_ll", CF "rotated_latitude_longitude").

A rotated grid is a regular latitude-longitude grid on a sphere whose pole has been moved, so that
a regional domain (COSMO's Germany, the Met Office's North Atlantic) sits near the rotated
equator with almost square cells. GRIB names the rotation by the geographic position of the
rotated *southern* pole and an angle of rotation about the new polar axis; CF names it by the
rotated *northern* pole, the antipode.

The axes follow eccodes' reading of a GRIB header exactly, so that our 2-D latitudes and
longitudes agree point by point with eccodes' `latitudes` / `longitudes`:
- columns are evenly spaced from the first to the last rotated longitude (eccodes recomputes the
  i increment from them);
- rows step by the coded j increment from the first rotated latitude, and the last row is the
  header's last latitude (eccodes pins it there, whatever the increment says: the Met Office NAE
  file's coded 0.109998 degrees put its last row 0.0007 degrees off the 0.11-degree spacing).

The rotation is our own (numpy): pyproj is avoided because, loaded beside eccodes' wheel, it
crashes the interpreter at exit.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from atmorep_core.errors import ConfigError, InputDataError

GRIDS_FILE = Path(__file__).resolve().parent.parent / "recipes" / "grids.yaml"
_MICRODEGREE = 6  # GRIB2 stores angles in microdegrees: round to them so round trips are exact


@dataclass(frozen=True)
class RotatedGrid:
    """A regular grid in rotated coordinates; rows of rotated latitude, columns of longitude."""

    south_pole_lat: float  # geographic latitude of the rotated southern pole
    south_pole_lon: float  # geographic longitude of the rotated southern pole, -180 .. 180
    rlat_first: float  # rotated latitude of the first row
    rlat_step: float  # j increment as coded; negative when rows run north to south
    rlat_last: float  # rotated latitude of the last row (eccodes pins the last row here)
    nj: int
    rlon_first: float  # rotated longitude of the first column, in -180 .. 180
    rlon_last: float  # rotated longitude of the last column, east of the first (may pass 180)
    ni: int
    angle: float = 0.0  # angle of rotation about the rotated polar axis: only 0 (see below)

    def __post_init__(self) -> None:
        # One spelling of the pole's longitude (GRIB2 has 0 .. 360, CF's north pole -180 .. 180),
        # rounded far below GRIB's microdegree so that every route to it gives the same float.
        object.__setattr__(self, "south_pole_lon", round(_half_turn(self.south_pole_lon), 9))
        if self.angle != 0.0:
            # COSMO's and the UM's grids have angle 0; eccodes (2.50) applies a non-zero angle as
            # a shift of geographic longitude, not a turn about the rotated axis: no agreement.
            raise ValueError(f"rotated grid: angle of rotation {self.angle} (only 0 is supported)")
        if self.ni < 1 or self.nj < 1:
            raise ValueError(f"rotated grid: {self.nj} x {self.ni} points")
        if not -90.0 <= self.south_pole_lat <= 90.0:
            raise ValueError(f"rotated grid: southern pole latitude {self.south_pole_lat}")
        if self.ni > 1 and not self.rlon_first < self.rlon_last <= self.rlon_first + 360.0:
            raise ValueError(
                f"rotated grid: longitudes {self.rlon_first} .. {self.rlon_last} must increase"
            )
        if self.nj > 1 and (self.rlat_step == 0 or not self._rows_in_order()):
            raise ValueError(
                f"rotated grid: rows {self.rlat_first} .. {self.rlat_last} by {self.rlat_step}"
            )

    def _rows_in_order(self) -> bool:
        span = self.rlat_last - self.rlat_first
        return span * self.rlat_step > 0 and all(-90 <= v <= 90 for v in self.rlats[[0, -1]])

    @classmethod
    def regular(
        cls,
        south_pole: tuple[float, float],
        first: tuple[float, float],
        step: tuple[float, float],
        shape: tuple[int, int],
        angle: float = 0.0,
    ) -> RotatedGrid:
        """A grid from its southern pole (lat, lon), first point (rlat, rlon), steps, (nj, ni)."""
        (rlat, rlon), (dlat, dlon), (nj, ni) = first, step, shape
        rlon = _half_turn(rlon)
        return cls(
            float(south_pole[0]), float(south_pole[1]),
            float(rlat), float(dlat), round(rlat + dlat * (nj - 1), _MICRODEGREE), int(nj),
            float(rlon), round(rlon + dlon * (ni - 1), _MICRODEGREE), int(ni), float(angle),
        )  # fmt: skip

    @property
    def shape(self) -> tuple[int, int]:
        return (self.nj, self.ni)

    @property
    def rlon_step(self) -> float:
        return (self.rlon_last - self.rlon_first) / (self.ni - 1) if self.ni > 1 else 0.0

    @property
    def north_pole(self) -> tuple[float, float]:
        """Geographic (latitude, longitude) of the rotated north pole, CF's grid_north_pole."""
        return -self.south_pole_lat, round(_half_turn(self.south_pole_lon + 180.0), 9)

    @property
    def rlats(self) -> np.ndarray:
        """Rotated latitude of each row (nj,)."""
        values = self.rlat_first + self.rlat_step * np.arange(self.nj, dtype=np.float64)
        values[-1] = self.rlat_last
        return values

    @property
    def rlons(self) -> np.ndarray:
        """Rotated longitude of each column (ni,), increasing, in the first column's turn."""
        values = self.rlon_first + self.rlon_step * np.arange(self.ni, dtype=np.float64)
        values[-1] = self.rlon_last
        return values

    @cached_property
    def _geographic(self) -> tuple[np.ndarray, np.ndarray]:
        rlat, rlon = np.meshgrid(self.rlats, self.rlons, indexing="ij")
        lats, lons = unrotate(rlat, rlon, self.south_pole_lat, self.south_pole_lon)
        lats.flags.writeable = lons.flags.writeable = False  # shared by every caller: read-only
        return lats, lons

    @property
    def lats(self) -> np.ndarray:
        """Geographic latitudes (nj, ni), degrees north."""
        return self._geographic[0]

    @property
    def lons(self) -> np.ndarray:
        """Geographic longitudes (nj, ni), degrees east in -180 .. 180."""
        return self._geographic[1]

    def describe(self) -> str:
        pole_lat, pole_lon = self.north_pole
        return (
            f"rotated pole {self.nj} x {self.ni} points, {abs(self.rlat_step):g} x "
            f"{self.rlon_step:.6g} deg, rotated lat {self.rlat_first:g}..{self.rlat_last:g}, "
            f"lon {self.rlon_first:g}..{self.rlon_last:g}, north pole {pole_lat:g}N "
            f"{pole_lon:g}E (southern {self.south_pole_lat:g} / {self.south_pole_lon:g})"
        )


def _half_turn(lon: float) -> float:
    """A longitude (or difference) in -180 .. 180."""
    return float((lon + 180.0) % 360.0 - 180.0)


def unrotate(
    rlat: np.ndarray, rlon: np.ndarray, south_pole_lat: float, south_pole_lon: float
) -> tuple[np.ndarray, np.ndarray]:
    """Geographic (lat, lon) in degrees of points given in rotated coordinates.

    On the unit sphere: tilt the pole about the y axis from 90 N down to the rotated north
    pole's latitude (-south pole latitude), then turn about the Earth's axis to the southern
    pole's longitude. Rotated (0, 0) lands at (90 + south pole latitude, south pole longitude).
    Exact in float64; eccodes rounds its coordinates through a float32 to about 4e-6 degrees.
    """
    lat, lon = np.radians(rlat), np.radians(rlon)
    x, y, z = np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)
    tilt = np.radians(90.0 + south_pole_lat)
    x, z = x * np.cos(tilt) - z * np.sin(tilt), x * np.sin(tilt) + z * np.cos(tilt)
    geo_lat = np.degrees(np.arcsin(np.clip(z, -1.0, 1.0)))
    geo_lon = np.degrees(np.arctan2(y, x)) + south_pole_lon
    return geo_lat, (geo_lon + 180.0) % 360.0 - 180.0


def rotate(
    lat: np.ndarray, lon: np.ndarray, south_pole_lat: float, south_pole_lon: float
) -> tuple[np.ndarray, np.ndarray]:
    """Rotated (rlat, rlon) in degrees of geographic points: the inverse of `unrotate`."""
    lat, lon = np.radians(lat), np.radians(np.asarray(lon) - south_pole_lon)
    x, y, z = np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)
    tilt = np.radians(90.0 + south_pole_lat)
    x, z = x * np.cos(tilt) + z * np.sin(tilt), -x * np.sin(tilt) + z * np.cos(tilt)
    rlat = np.degrees(np.arcsin(np.clip(z, -1.0, 1.0)))
    rlon = np.degrees(np.arctan2(y, x))
    return rlat, (rlon + 180.0) % 360.0 - 180.0


# --- from a GRIB file, and by name ------------------------------------------------------------


def from_grib(path: Path | str) -> RotatedGrid:
    """The grid of the first message of a GRIB file; InputDataError if it is not rotated_ll."""
    import eccodes  # the GRIB library is needed only here

    try:
        with open(path, "rb") as stream:
            handle = eccodes.codes_grib_new_from_file(stream)
            if handle is None:
                raise InputDataError(f"{path}: no GRIB message in the file")
            try:
                return from_handle(handle, str(path))
            finally:
                eccodes.codes_release(handle)
    except (OSError, eccodes.GribInternalError) as error:
        raise InputDataError(f"{path}: not a readable GRIB file ({error})") from error


def from_handle(handle: int, where: str) -> RotatedGrid:
    """The grid of an open eccodes message; InputDataError naming `where` if not rotated_ll."""
    import eccodes

    grid_type = eccodes.codes_get(handle, "gridType")
    if grid_type != "rotated_ll":  # other grids lack the pole's keys
        raise InputDataError(_not_rotated(where, grid_type))
    return grid_from_keys({key: eccodes.codes_get(handle, key) for key in _GRIB_KEYS}, where)


_GRIB_KEYS = (
    "gridType", "Ni", "Nj", "latitudeOfSouthernPoleInDegrees",
    "longitudeOfSouthernPoleInDegrees", "angleOfRotationInDegrees",
    "latitudeOfFirstGridPointInDegrees", "latitudeOfLastGridPointInDegrees",
    "longitudeOfFirstGridPointInDegrees", "longitudeOfLastGridPointInDegrees",
    "jDirectionIncrementInDegrees", "iScansNegatively", "jScansPositively",
    "jPointsAreConsecutive",
)  # fmt: skip


def _not_rotated(where: object, grid_type: str) -> str:
    return f"{where}: its grid is {grid_type}, not a rotated-pole grid (rotated_ll)"


def grid_from_keys(keys: dict[str, Any], where: str) -> RotatedGrid:
    """A RotatedGrid from a GRIB message's keys (as `_GRIB_KEYS` names them)."""
    if keys["gridType"] != "rotated_ll":
        raise InputDataError(_not_rotated(where, keys["gridType"]))
    if keys["iScansNegatively"] or keys["jPointsAreConsecutive"]:
        raise InputDataError(f"{where}: rotated grid must scan west to east, row by row")
    if keys["angleOfRotationInDegrees"] != 0:
        angle = keys["angleOfRotationInDegrees"]
        raise InputDataError(f"{where}: angle of rotation {angle} deg; only 0 is supported")
    ni, nj = int(keys["Ni"]), int(keys["Nj"])
    lat_first = float(keys["latitudeOfFirstGridPointInDegrees"])
    lat_step = float(keys["jDirectionIncrementInDegrees"])
    if not keys["jScansPositively"]:
        lat_step = -lat_step
    lon_first = _half_turn(float(keys["longitudeOfFirstGridPointInDegrees"]))
    span = (float(keys["longitudeOfLastGridPointInDegrees"]) - lon_first) % 360.0
    return RotatedGrid(
        float(keys["latitudeOfSouthernPoleInDegrees"]),
        float(keys["longitudeOfSouthernPoleInDegrees"]),
        lat_first, lat_step, float(keys["latitudeOfLastGridPointInDegrees"]), nj,
        lon_first, round(lon_first + (span or 360.0), _MICRODEGREE), ni,
    )  # fmt: skip


def named_grids(path: Path = GRIDS_FILE) -> dict[str, RotatedGrid]:
    """The named target grids of the grids recipe (`recipes/grids.yaml`)."""
    import yaml

    entries = yaml.safe_load(path.read_text()) or {}
    grids = {}
    for name, entry in entries.get("grids", {}).items():
        try:
            grids[str(name)] = RotatedGrid.regular(
                (entry["south_pole"]["lat"], entry["south_pole"]["lon"]),
                (entry["first"]["rlat"], entry["first"]["rlon"]),
                (entry["step"]["rlat"], entry["step"]["rlon"]),
                (entry["shape"]["nj"], entry["shape"]["ni"]),
                entry.get("angle", 0.0),
            )
        except KeyError as error:
            raise ConfigError(f"{path}: grid {name!r}: no key {error}") from error
        except (TypeError, ValueError) as error:
            raise ConfigError(f"{path}: grid {name!r}: {error}") from error
    return grids


def target_grid(name_or_path: str | Path, grids_file: Path = GRIDS_FILE) -> RotatedGrid:
    """A grid by its name in the grids recipe, or the grid of a GRIB file (`--grid-from`)."""
    path = Path(name_or_path)
    if path.suffix or path.exists():  # a file, not a name: names have no suffix
        if not path.is_file():
            raise InputDataError(f"{path}: no such GRIB file to take a grid from")
        return from_grib(path)
    grids = named_grids(grids_file)
    if str(name_or_path) not in grids:
        known = ", ".join(sorted(grids)) or "none"
        raise ConfigError(f"unknown grid {str(name_or_path)!r}: known grids are {known}")
    return grids[str(name_or_path)]
