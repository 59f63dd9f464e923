"""Read a product back: our CF NetCDF (`io/netcdf.py`) or a GRIB2 forecast (via cfgrib).

A rotated-pole product comes back on the same `RotatedGrid`: from the GRIB header (cfgrib's
GRIB_ attributes), or from the NetCDF's rotated axes and grid mapping (`io/netcdf_grids.py`).

GRIB keeps no provenance, so a product read from GRIB has empty attributes; statistics
messages (ensemble mean "em", standard deviation "es") are left out, since the members hold
everything. GRIB2 puts screen-level fields on "heightAboveGround" 2; the level comes back as the
GRIB file has it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import xarray as xr
from eccodes import GribInternalError

from atmorep_core.errors import InputDataError
from atmorep_core.fields import from_grib
from atmorep_core.grid import LatLonGrid
from atmorep_core.io.grib_scan import scan_headers
from atmorep_core.io.netcdf import MEMBERS, PRODUCT_ATTRIBUTES
from atmorep_core.io.netcdf_grids import grid_of_variable
from atmorep_core.io.product import Product, ProductField, ProductGrid
from atmorep_core.rotated_grid import grid_from_keys

NETCDF_SUFFIXES = (".nc", ".nc4")
GRIB_SUFFIXES = (".grib2", ".grib", ".grb2", ".grb")
_MEMBER_TYPES = ("pf", "fc", "cf")  # GRIB dataType of ensemble members / a deterministic run
T = TypeVar("T")


@dataclass(frozen=True)
class ProductInfo:
    """What a product file says about itself, read without its values."""

    path: Path
    init: datetime
    fields: tuple[str, ...]
    attributes: Mapping[str, str]  # provenance; empty for GRIB


def read_product(path: Path) -> Product:
    """The product in a NetCDF or GRIB file; InputDataError naming the file if it is not one."""
    return _by_format(path, _read_netcdf, _read_grib)


def peek_product(path: Path) -> ProductInfo:
    """The base time, field names and attributes of a product file, without decoding values."""
    return _by_format(path, _peek_netcdf, _peek_grib)


def _by_format(path: Path, netcdf: Callable[[Path], T], grib: Callable[[Path], T]) -> T:
    if not path.is_file():
        raise InputDataError(f"{path}: no such product file")
    if path.suffix not in NETCDF_SUFFIXES + GRIB_SUFFIXES:
        known = ", ".join(NETCDF_SUFFIXES + GRIB_SUFFIXES)
        raise InputDataError(f"{path}: unknown product format (expected {known})")
    try:
        return netcdf(path) if path.suffix in NETCDF_SUFFIXES else grib(path)
    except (OSError, ValueError, KeyError, EOFError, InputDataError, GribInternalError) as error:
        raise InputDataError(f"{path}: not a readable atmorep product ({error})") from error


def grid_of(lats: np.ndarray, lons: np.ndarray) -> LatLonGrid:
    """The regular lat-lon grid of two coordinate vectors; ValueError if not evenly spaced."""
    lat_step, lon_step = _step(lats, "latitude"), _step(lons, "longitude")
    return LatLonGrid(float(lats[0]), lat_step, len(lats), float(lons[0]), lon_step, len(lons))


def _step(values: np.ndarray, name: str) -> float:
    if len(values) < 2:
        return 0.0
    steps = np.diff(np.asarray(values, dtype=np.float64))
    if np.ptp(steps) > 1e-4:
        raise ValueError(f"{name}s are not evenly spaced")
    return round(float(steps.mean()), 6)


def _hours(steps: np.ndarray) -> tuple[int, ...]:
    return tuple(int(s) for s in np.atleast_1d(steps) // np.timedelta64(1, "h"))


def _init(value: Any) -> datetime:
    return datetime.fromisoformat(str(np.datetime64(value, "s")))


# --- NetCDF ----------------------------------------------------------------------------------


def _peek_netcdf(path: Path) -> ProductInfo:
    with xr.open_dataset(path, decode_timedelta=True) as dataset:
        attrs = {str(k): str(v) for k, v in dataset.attrs.items()}
        own = attrs.get(PRODUCT_ATTRIBUTES, "").split()  # numbers come back as the text given
        return ProductInfo(
            path,
            datetime.fromisoformat(attrs["init"]),
            tuple(_member_variables(dataset)),
            {key: attrs[key] for key in own},
        )


def _member_variables(dataset: xr.Dataset) -> list[str]:
    """The ensembles: `NAME` (time, realization, ...), not NAME_mean, _spread, _quantiles."""
    return [str(n) for n, v in dataset.data_vars.items() if v.dims[1:2] == (MEMBERS,)]


def _read_netcdf(path: Path) -> Product:
    info = _peek_netcdf(path)
    with xr.open_dataset(path, decode_timedelta=True) as dataset:
        return Product(
            init=info.init,
            steps_hours=_hours(dataset["step"].values),
            fields=tuple(_netcdf_field(dataset, dataset[name]) for name in info.fields),
            kind=str(dataset.attrs.get("product_kind", "forecast")),
            attributes=info.attributes,
        )


def _netcdf_field(dataset: xr.Dataset, variable: xr.DataArray) -> ProductField:
    """(time, realization, [level], latitude, longitude) -> a field; a single level from the
    variable's GRIB attributes."""
    grid = grid_of_variable(dataset, variable, grid_of)
    values = np.moveaxis(variable.values, 0, 1)  # (member, step, [level], ...)
    levels: tuple[int, ...]
    if variable.ndim == 4:
        level_type = str(variable.attrs["GRIB_typeOfLevel"])
        levels = (int(variable.attrs["GRIB_level"]),)
        values = values[:, :, None]
    else:
        level = dataset[variable.dims[2]]
        level_type = str(level.attrs["GRIB_typeOfLevel"])
        levels = tuple(int(v) for v in level.values)
    return ProductField(str(variable.name), level_type, levels, grid, values)


# --- GRIB ------------------------------------------------------------------------------------


def _peek_grib(path: Path) -> ProductInfo:
    members = [h for h in scan_headers(path) if h.data_type in _MEMBER_TYPES]
    inits = {h.base_time for h in members}
    if len(inits) != 1:
        raise ValueError(f"{len(inits)} base times of forecast messages: one product per file")
    names = (from_grib(h.short_name, h.param_id).name for h in members)
    return ProductInfo(path, _init(inits.pop()), tuple(dict.fromkeys(names)), {})


def _read_grib(path: Path) -> Product:
    import cfgrib  # slow to import, needed only here

    with warnings.catch_warnings():  # cfgrib's own xarray.merge call warns of a new default
        warnings.simplefilter("ignore", FutureWarning)
        # In backend_kwargs: a plain indexpath="" keyword is not passed on, and cfgrib would
        # leave an index file beside the product. The rotated grid's keys cfgrib does not keep.
        options = {"indexpath": "", "read_keys": list(_EXTRA_KEYS)}
        datasets = cfgrib.open_datasets(str(path), backend_kwargs=options)
    variables = [
        v
        for dataset in datasets
        for v in dataset.data_vars.values()
        if v.attrs.get("GRIB_dataType") in _MEMBER_TYPES
    ]
    if not variables:
        raise ValueError("no forecast messages")
    inits = {np.datetime64(v["time"].values, "s") for v in variables}
    if any(v["time"].ndim for v in variables) or len(inits) > 1:
        raise ValueError("more than one base time: one product per file")
    first = variables[0]
    return Product(
        init=_init(first["time"].values),
        steps_hours=_hours(first["step"].values),
        fields=tuple(_grib_field(v) for v in variables),
    )


def _grib_field(variable: xr.DataArray) -> ProductField:
    """cfgrib's variable, its length-1 dimensions squeezed to scalars, -> (M, step, L, lat, lon)."""
    level_type = str(variable.attrs["GRIB_typeOfLevel"])
    for dimension in ("number", "step", level_type):
        if dimension not in variable.dims:
            variable = variable.expand_dims(dimension)
    rotated = variable.attrs["GRIB_gridType"] == "rotated_ll"  # cfgrib: (y, x), 2-D lat / lon
    space = ("y", "x") if rotated else ("latitude", "longitude")
    variable = variable.transpose("number", "step", level_type, *space)
    field = from_grib(str(variable.attrs["GRIB_shortName"]), int(variable.attrs["GRIB_paramId"]))
    levels = tuple(int(v) for v in np.atleast_1d(variable[level_type].values))
    return ProductField(field.name, level_type, levels, _grib_grid(variable.attrs), variable.values)


def _grib_grid(attrs: Mapping[str, Any]) -> ProductGrid:
    """The grid as the GRIB header defines it, values in scanning order.

    cfgrib's longitude coordinate is sorted, so a grid across Greenwich that ends past 360
    (350 .. 360.5, stored as 350 .. 0.5) is labelled 0.5, 350, ..., while the values keep the
    file's order; the header's first point and increments do not have that problem.
    """
    if attrs["GRIB_gridType"] == "rotated_ll":
        return _rotated_grid(attrs)
    if attrs["GRIB_gridType"] != "regular_ll" or attrs["GRIB_iScansNegatively"]:
        raise ValueError(f"grid {attrs['GRIB_gridType']}: a regular lat-lon grid scanning east")
    south_to_north = attrs["GRIB_jScansPositively"]
    lat_step = float(attrs["GRIB_jDirectionIncrementInDegrees"]) * (1 if south_to_north else -1)
    return LatLonGrid(
        float(attrs["GRIB_latitudeOfFirstGridPointInDegrees"]), lat_step, int(attrs["GRIB_Ny"]),
        float(attrs["GRIB_longitudeOfFirstGridPointInDegrees"]),
        float(attrs["GRIB_iDirectionIncrementInDegrees"]), int(attrs["GRIB_Nx"]),
    )  # fmt: skip


def _rotated_grid(attrs: Mapping[str, Any]) -> ProductGrid:
    """cfgrib's GRIB_ attributes -> the header keys `grid_from_keys` reads."""
    keys = {key: attrs[f"GRIB_{key}"] for key in _ROTATED_KEYS + _EXTRA_KEYS}
    keys |= {"Ni": attrs["GRIB_Nx"], "Nj": attrs["GRIB_Ny"], "gridType": "rotated_ll"}
    return grid_from_keys(keys, "GRIB file")


_EXTRA_KEYS = ("angleOfRotationInDegrees", "jPointsAreConsecutive")
_ROTATED_KEYS = (
    "latitudeOfSouthernPoleInDegrees", "longitudeOfSouthernPoleInDegrees",
    "latitudeOfFirstGridPointInDegrees", "latitudeOfLastGridPointInDegrees",
    "longitudeOfFirstGridPointInDegrees", "longitudeOfLastGridPointInDegrees",
    "jDirectionIncrementInDegrees", "iScansNegatively", "jScansPositively",
)  # fmt: skip
