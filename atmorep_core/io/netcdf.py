"""Product -> CF-1.10 NetCDF-4 that CDO, earthkit and cf_xarray read: the ensemble and its mean,
spread and quantiles, per field.

Each field `name` becomes four variables, time always first (CDO's rule):
- `name` (time, realization, level, latitude, longitude): every member, float32, as the model
  gave it;
- `name_mean` and `name_spread` (time, level, latitude, longitude): ensemble mean and standard
  deviation (ddof=1; 0 for a deterministic product);
- `name_quantiles` (time, quantile, level, latitude, longitude): numpy's linear quantiles.
A single-level field on a surface-like level ("surface", "heightAboveGround", "meanSea") has no
level dimension; its level is the GRIB2 one (`GRIB_typeOfLevel`, `GRIB_level`: 2 m temperature
is heightAboveGround 2, as the GRIB2 product has it), and a height above ground is a scalar
`height` coordinate (m, axis Z).

Level dimensions are named after their kind (`model_level`, `pressure`, `height`; a second set
of one kind `pressure_2`), with CF attributes and axis Z (`io/cf_names.py`). Fields on other
grids get numbered dimensions (`latitude_2`, ...). A field on a rotated-pole grid has (..., rlat,
rlon) with 2-D latitude and longitude and a CF grid mapping (`io/netcdf_grids.py`).
Coordinates: `time` (valid time, axis T), `forecast_reference_time` (the base time, scalar),
`step` (lead time, forecast_period, along time), `realization` (1..N, units 1), `quantile`.
Every data variable names its auxiliary coordinates in its own `coordinates` attribute.
Global attributes: Conventions, title, institution, source, history, the product's kind, base
time and size, and the product's own provenance (numbers as numbers), whose names
`product_attributes` lists so that a reader gets them back exactly.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr

import atmorep_core
from atmorep_core.io.cf_names import (
    cf_units,
    field_attributes,
    is_vertical,
    level_attributes,
    vertical_name,
)
from atmorep_core.io.grib_write import grib_level
from atmorep_core.io.netcdf_grids import grid_layout
from atmorep_core.io.product import Product, ProductField, atomic_output

DEFAULT_QUANTILES = (0.1, 0.5, 0.9)
SINGLE_LEVEL_TYPES = ("surface", "heightAboveGround", "meanSea")
MEMBERS = "realization"
PRODUCT_ATTRIBUTES = "product_attributes"  # global: the names of the product's own attributes
_BASE_TIME = "forecast_reference_time"
_TIME_AXES = ("time", _BASE_TIME)


def write_netcdf(
    product: Product, path: Path | str, *, quantiles: Sequence[float] = DEFAULT_QUANTILES
) -> None:
    """Write `product` as CF NetCDF-4 to `path`, atomically (via `path.tmp`).

    The coordinates go first, then one variable at a time, each computed just before it is
    written: the peak memory stays a few times one field's values (all variables at once, as
    `product_dataset` holds them, would be about ten times the product's size).
    """
    probabilities = _checked_quantiles(quantiles)
    layout, spaces = _layout(product, probabilities)
    with atomic_output(path) as temporary:
        # Auxiliary coordinates as plain variables: each field names its own in `coordinates`
        # (xarray would otherwise list them in a global attribute, which CF does not know).
        _write(layout.reset_coords(), temporary, "w", product)
        for name, variable in _all_variables(product, spaces, probabilities):
            single = xr.Dataset({name: variable}, attrs=layout.attrs)
            _write(single, temporary, "a", product)


def _write(dataset: xr.Dataset, path: Path, mode: Literal["w", "a"], product: Product) -> None:
    encoding = _encoding(dataset, product)
    dataset.to_netcdf(path, mode=mode, engine="netcdf4", format="NETCDF4", encoding=encoding)


def _encoding(dataset: xr.Dataset, product: Product) -> dict[Hashable, dict[str, Any]]:
    # No fill values: CF wants none on coordinates and the product's data are all finite.
    encoding: dict[Hashable, dict[str, Any]] = {
        name: {"_FillValue": None} for name in dataset.variables
    }
    for name, variable in dataset.data_vars.items():  # `coordinates`: the variables' own
        if variable.ndim > 1:
            encoding[name] |= {"zlib": True, "complevel": 4}
    # Hours since the base time: the base time reads 0 and each valid time its lead.
    for name in _TIME_AXES:
        if name in encoding:
            encoding[name] |= {
                "units": f"hours since {product.init:%Y-%m-%d %H:%M:%S}",
                "calendar": "proleptic_gregorian",
            }
    if "step" in encoding:
        encoding["step"]["units"] = "hours"
    return encoding


def product_dataset(
    product: Product, *, quantiles: Sequence[float] = DEFAULT_QUANTILES
) -> xr.Dataset:
    """The CF dataset that `write_netcdf` writes, in memory."""
    probabilities = _checked_quantiles(quantiles)
    dataset, spaces = _layout(product, probabilities)
    return dataset.assign(dict(_all_variables(product, spaces, probabilities)))


@dataclass(frozen=True)
class Space:
    """A field's dimensions after time (and realization or quantile), and its attributes that
    depend on the file's layout: grid mapping, auxiliary coordinates."""

    dims: tuple[str, ...]
    attrs: dict[str, Any]
    coordinates: str  # the auxiliary coordinates' names, for each variable's encoding


def _layout(product: Product, probabilities: np.ndarray) -> tuple[xr.Dataset, dict[str, Space]]:
    """The coordinates and global attributes, and each field's dimensions and coordinates."""
    verticals = _vertical_names(product)
    grids = _suffixes([f.grid for f in product.fields])
    dataset = xr.Dataset(coords=_common_coordinates(product, probabilities))
    spaces = {}
    for product_field in product.fields:
        layout = grid_layout(product_field.grid, grids[product_field.grid])
        dataset = dataset.assign_coords(layout.coords)
        dims: tuple[str, ...] = layout.dims
        auxiliary = [_BASE_TIME, "step", *layout.auxiliary]
        key = _level_key(product_field)
        vertical = None if key is None else verticals[key]
        if vertical is not None:
            coordinate = _vertical_coordinate(product_field, vertical)
            dataset = dataset.assign_coords({vertical: coordinate})
            if coordinate.ndim:
                dims = (vertical, *dims)
            else:
                auxiliary.insert(2, vertical)
        spaces[product_field.name] = Space(dims, layout.field_attrs, " ".join(auxiliary))
    dataset.attrs = _global_attributes(product)
    return dataset, spaces


def _all_variables(
    product: Product, spaces: dict[str, Space], probabilities: np.ndarray
) -> Iterator[tuple[str, xr.Variable]]:
    for product_field in product.fields:
        yield from _field_variables(product_field, spaces[product_field.name], probabilities)


def _checked_quantiles(quantiles: Sequence[float]) -> np.ndarray:
    probabilities = np.asarray(quantiles, dtype=np.float64)
    valid = probabilities.ndim == 1 and probabilities.size > 0
    valid = valid and bool(np.all((probabilities >= 0) & (probabilities <= 1)))
    if not valid or np.unique(probabilities).size != probabilities.size:
        raise ValueError(f"quantiles must be distinct numbers within 0..1, got {quantiles}")
    return probabilities


def _has_level_dimension(product_field: ProductField) -> bool:
    single = len(product_field.levels) == 1
    return not (single and product_field.level_type in SINGLE_LEVEL_TYPES)


def grib2_level(product_field: ProductField) -> tuple[str, int]:
    """A single-level field's level as its GRIB2 product has it (2 m temperature stored on
    ERA5's "surface" 0 is "heightAboveGround" 2)."""
    param_id = product_field.catalogue.param_id
    return grib_level(param_id, product_field.level_type, product_field.levels[0], edition=2)


def _level_key(product_field: ProductField) -> tuple[str, tuple[int, ...]] | None:
    """What the field's vertical coordinate shows: a level set, or a height above ground."""
    if _has_level_dimension(product_field):
        return product_field.level_type, product_field.levels
    level_type, level = grib2_level(product_field)
    return (level_type, (level,)) if is_vertical(level_type) else None


def _vertical_names(product: Product) -> dict[tuple[str, tuple[int, ...]], str]:
    """A name per vertical coordinate, after its kind, numbered from the second of a kind on."""
    names: dict[tuple[str, tuple[int, ...]], str] = {}
    for product_field in product.fields:
        key = _level_key(product_field)
        if key is None or key in names:
            continue
        base = vertical_name(key[0])
        taken = sum(1 for k in names if vertical_name(k[0]) == base)
        names[key] = f"{base}_{taken + 1}" if taken else base
    return names


def _suffixes(keys: Sequence[Hashable]) -> dict[Hashable, str]:
    """A dimension-name suffix per distinct key, in order of appearance: "", "_2", "_3", ..."""
    suffixes: dict[Hashable, str] = {}
    for key in keys:
        if key not in suffixes:
            suffixes[key] = f"_{len(suffixes) + 1}" if suffixes else ""
    return suffixes


def _common_coordinates(product: Product, probabilities: np.ndarray) -> dict[str, xr.Variable]:
    steps = np.array(product.steps_hours, dtype="timedelta64[h]").astype("timedelta64[ns]")
    init = np.datetime64(product.init, "ns")
    members = np.arange(1, product.members + 1, dtype=np.int32)
    return {
        "time": xr.Variable("time", init + steps, _attrs("time", "valid time (UTC)", axis="T")),
        _BASE_TIME: xr.Variable((), init, _attrs(_BASE_TIME, "base time (UTC)")),
        "step": xr.Variable("time", steps, _attrs("forecast_period", "lead time")),
        MEMBERS: xr.Variable(MEMBERS, members, _attrs(MEMBERS, "ensemble member", units="1")),
        "quantile": xr.Variable(
            "quantile", probabilities, {"long_name": "quantile over members", "units": "1"}
        ),
    }


def _vertical_coordinate(product_field: ProductField, name: str) -> xr.Variable:
    """The level set as a dimension coordinate, or a single height as a scalar one."""
    if _has_level_dimension(product_field):
        attrs = level_attributes(product_field.level_type)
        return xr.Variable(name, np.array(product_field.levels, dtype=np.int32), attrs)
    level_type, level = grib2_level(product_field)
    return xr.Variable((), np.float64(level), level_attributes(level_type))


def _field_variables(
    product_field: ProductField, space: Space, probabilities: np.ndarray
) -> Iterator[tuple[str, xr.Variable]]:
    """The field's four variables, each computed only when asked for (time first)."""
    keep_level = _has_level_dimension(product_field)

    def shaped(values: np.ndarray) -> np.ndarray:
        """(member or quantile, step, [level], ...) -> (time, member or quantile, [level], ...)"""
        values = values if keep_level else values[:, :, 0]
        return np.moveaxis(values, 1, 0)

    def statistic(values: np.ndarray) -> np.ndarray:
        return values if keep_level else values[:, 0]

    def variable(dims: tuple[str, ...], values: np.ndarray, **extra: str) -> xr.Variable:
        encoding = {"coordinates": space.coordinates}
        return xr.Variable(("time", *dims, *space.dims), values, attrs | extra, encoding)

    name, attrs = product_field.name, _field_attributes(product_field) | space.attrs
    long_name = attrs["long_name"]
    yield name, variable((MEMBERS,), shaped(product_field.values))
    yield (
        f"{name}_mean",
        variable((), statistic(product_field.mean()), long_name=f"{long_name}, ensemble mean",
                 cell_methods=f"{MEMBERS}: mean"),
    )  # fmt: skip
    yield (
        f"{name}_spread",
        variable((), statistic(product_field.spread()),
                 long_name=f"{long_name}, ensemble standard deviation (ddof=1)",
                 cell_methods=f"{MEMBERS}: standard_deviation"),
    )  # fmt: skip
    yield (
        f"{name}_quantiles",
        variable(("quantile",), shaped(product_field.quantiles(probabilities)),
                 long_name=f"{long_name}, quantiles over members"),
    )  # fmt: skip


def _field_attributes(product_field: ProductField) -> dict[str, Any]:
    catalogue = product_field.catalogue
    attrs = field_attributes(catalogue.name) | {
        "units": cf_units(catalogue.units),
        "GRIB_paramId": catalogue.param_id,
        "GRIB_shortName": catalogue.short_name,
    }
    if not _has_level_dimension(product_field):
        level_type, level = grib2_level(product_field)
        attrs |= {"GRIB_typeOfLevel": level_type, "GRIB_level": level}
    return attrs


def _global_attributes(product: Product) -> dict[str, Any]:
    version = atmorep_core.__version__
    own = {key: _number_or_text(value) for key, value in product.attributes.items()}
    return {
        "Conventions": "CF-1.10",
        "title": f"AtmoRep {product.kind}",
        "institution": "not stated (an atmorep research product, not an operational centre's)",
        "source": f"AtmoRep multiformer, atmorep {version}",
        # No clock time (the manifest has it): a rerun must write the same bytes.
        "history": f"written by atmorep {version} (run time in the product's manifest)",
        "product_kind": product.kind,
        "init": product.init.isoformat(),
        "ensemble_members": product.members,
        **own,
        PRODUCT_ATTRIBUTES: " ".join(product.attributes),
    }


def _number_or_text(value: str) -> int | float | str:
    """A provenance value as the number it spells, where it reads back as the same text."""
    for kind in (int, float):
        try:
            number = kind(value)
        except ValueError:
            continue
        if str(number) == value and np.isfinite(number):
            return number
    return value


def _attrs(standard_name: str, long_name: str, **extra: str) -> dict[str, str]:
    return {"standard_name": standard_name, "long_name": long_name, **extra}
