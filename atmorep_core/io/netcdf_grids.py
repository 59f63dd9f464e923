"""A product grid's CF coordinates, both ways: regular lat-lon, or rotated pole.

- Regular lat-lon: 1-D `latitude` and `longitude` dimension coordinates (axes Y and X).
- Rotated pole (CF 1.10 section 5.6, "rotated_latitude_longitude"): 1-D `rlat` / `rlon`
  dimension coordinates (standard names grid_latitude / grid_longitude, axes Y / X), 2-D
  auxiliary `latitude` / `longitude` (rlat, rlon) named in each field's `coordinates`, and a
  scalar grid-mapping variable `rotated_pole` with the rotated *north* pole, named in each
  field's `grid_mapping` attribute. The rows' increment is kept on `rlat` as `increment`: a GRIB
  header's coded j increment that the axis alone may not give exactly.

Several grids in one file get numbered names (`rlat_2`, `rotated_pole_2`, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from atmorep_core.grid import LatLonGrid
from atmorep_core.rotated_grid import RotatedGrid

GRID_MAPPING = "rotated_latitude_longitude"


@dataclass(frozen=True)
class GridLayout:
    """What the writer needs of one grid: the spatial dimensions, coordinates, field attributes."""

    dims: tuple[str, str]
    coords: dict[str, xr.Variable]
    field_attrs: dict[str, str] = field(default_factory=dict)  # grid_mapping
    auxiliary: tuple[str, ...] = ()  # 2-D latitude and longitude, for `coordinates`


def grid_layout(grid: LatLonGrid | RotatedGrid, suffix: str) -> GridLayout:
    """The CF coordinates of `grid`, their names ending in `suffix` ("" or "_2", ...)."""
    if isinstance(grid, RotatedGrid):
        return _rotated_layout(grid, suffix)
    latitude, longitude = f"latitude{suffix}", f"longitude{suffix}"
    # Longitudes as the grid has them (monotonic, possibly < 0 or > 360), which CF allows.
    coords = {
        latitude: xr.Variable(latitude, grid.lats, _geographic_attrs("latitude") | {"axis": "Y"}),
        longitude: xr.Variable(
            longitude, grid.lons, _geographic_attrs("longitude") | {"axis": "X"}
        ),
    }
    return GridLayout((latitude, longitude), coords)


def _rotated_layout(grid: RotatedGrid, suffix: str) -> GridLayout:
    rlat, rlon = f"rlat{suffix}", f"rlon{suffix}"
    latitude, longitude = f"latitude{suffix}", f"longitude{suffix}"
    mapping = f"rotated_pole{suffix}"
    pole_lat, pole_lon = grid.north_pole
    rotated_attrs = {"units": "degrees"}
    coords = {
        rlat: xr.Variable(
            rlat,
            grid.rlats,
            rotated_attrs
            | {"standard_name": "grid_latitude", "long_name": "rotated latitude", "axis": "Y"}
            | {"increment": grid.rlat_step},
        ),
        rlon: xr.Variable(
            rlon,
            grid.rlons,
            rotated_attrs
            | {"standard_name": "grid_longitude", "long_name": "rotated longitude", "axis": "X"},
        ),
        latitude: xr.Variable((rlat, rlon), grid.lats, _geographic_attrs("latitude")),
        longitude: xr.Variable((rlat, rlon), grid.lons, _geographic_attrs("longitude")),
        mapping: xr.Variable(
            (),
            np.int32(0),
            {
                "grid_mapping_name": GRID_MAPPING,
                "grid_north_pole_latitude": pole_lat,
                "grid_north_pole_longitude": pole_lon,
                "north_pole_grid_longitude": 0.0,
            },
        ),
    }
    return GridLayout((rlat, rlon), coords, {"grid_mapping": mapping}, (latitude, longitude))


def _geographic_attrs(name: str) -> dict[str, str]:
    units = "degrees_north" if name == "latitude" else "degrees_east"
    return {"standard_name": name, "long_name": name, "units": units}


def grid_of_variable(
    dataset: xr.Dataset,
    variable: xr.DataArray,
    regular: Callable[[np.ndarray, np.ndarray], LatLonGrid],
) -> LatLonGrid | RotatedGrid:
    """The grid of a field read back: rotated when it names a grid mapping, else `regular`."""
    row, column = dataset[variable.dims[-2]], dataset[variable.dims[-1]]
    mapping_name = variable.attrs.get("grid_mapping") or variable.encoding.get("grid_mapping")
    if mapping_name is None:
        return regular(row.values, column.values)
    mapping = dataset[str(mapping_name)].attrs
    if mapping.get("grid_mapping_name") != GRID_MAPPING:
        raise ValueError(f"grid mapping {mapping.get('grid_mapping_name')!r} is not {GRID_MAPPING}")
    return _rotated_grid(mapping, row, column)


def _rotated_grid(mapping: dict[str, Any], rlat: xr.DataArray, rlon: xr.DataArray) -> RotatedGrid:
    if float(mapping.get("north_pole_grid_longitude", 0.0)) != 0.0:
        raise ValueError("rotated grids with north_pole_grid_longitude other than 0")
    lats, lons = np.asarray(rlat.values, np.float64), np.asarray(rlon.values, np.float64)
    step = rlat.attrs.get("increment", round(float(lats[1] - lats[0]), 6) if lats.size > 1 else 0)
    return RotatedGrid(
        south_pole_lat=-float(mapping["grid_north_pole_latitude"]),
        south_pole_lon=float(mapping["grid_north_pole_longitude"]) + 180.0,
        rlat_first=float(lats[0]), rlat_step=float(step), rlat_last=float(lats[-1]),
        nj=lats.size, rlon_first=float(lons[0]), rlon_last=float(lons[-1]), ni=lons.size,
    )  # fmt: skip
