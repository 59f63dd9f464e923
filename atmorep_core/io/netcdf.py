"""Product -> CF-1.10 NetCDF-4: the ensemble and its mean, spread and quantiles, per field.

Each field `name` becomes four variables:
- `name` (member, step, level, latitude, longitude): every member, float32, as the model gave it;
- `name_mean` and `name_spread` (step, level, latitude, longitude): ensemble mean and standard
  deviation (ddof=1; 0 for a deterministic product);
- `name_quantiles` (quantile, step, level, latitude, longitude): numpy's linear quantiles.
A single-level field on a surface-like level ("surface", "heightAboveGround", "meanSea", e.g. t2m)
has no `level` dimension; its level type and level are variable attributes instead.

Fields on different level sets or grids get numbered dimensions (`level`, `level_2`, ...;
`latitude`, `latitude_2`, ...), each level coordinate naming its GRIB level type. A field on a
rotated-pole grid has (..., rlat, rlon) instead of (..., latitude, longitude), with 2-D latitude
and longitude and a CF grid mapping (`io/netcdf_grids.py`).
Coordinates: `time` (the base time, standard_name forecast_reference_time), `step` (lead time,
forecast_period), `valid_time` (time + step), `member` (1..N, realization), `quantile`.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr

from atmorep_core.io.netcdf_grids import grid_layout
from atmorep_core.io.product import Product, ProductField, atomic_output

DEFAULT_QUANTILES = (0.1, 0.5, 0.9)
SINGLE_LEVEL_TYPES = ("surface", "heightAboveGround", "meanSea")

# CF standard names of the catalogue's fields, where one fits exactly.
_STANDARD_NAMES = {
    "vorticity": "atmosphere_relative_vorticity",
    "divergence": "divergence_of_wind",
    "velocity_u": "eastward_wind",
    "velocity_v": "northward_wind",
    "velocity_z": "lagrangian_tendency_of_air_pressure",
    "temperature": "air_temperature",
    "specific_humidity": "specific_humidity",
    "total_precip": "lwe_thickness_of_precipitation_amount",
    "t2m": "air_temperature",
    "geopotential": "geopotential",
    "relative_humidity": "relative_humidity",
    "surface_pressure": "surface_air_pressure",
    "msl": "air_pressure_at_mean_sea_level",
}


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
        _write(layout, temporary, "w", product)
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
    for name in dataset.data_vars:
        encoding[name] |= {"zlib": True, "complevel": 4}
    # Hours since the base time: the base time reads 0 and each valid time its lead.
    for name in ("time", "valid_time"):
        if name in encoding:
            encoding[name]["units"] = f"hours since {product.init:%Y-%m-%d %H:%M:%S}"
    return encoding


def product_dataset(
    product: Product, *, quantiles: Sequence[float] = DEFAULT_QUANTILES
) -> xr.Dataset:
    """The CF dataset that `write_netcdf` writes, in memory."""
    probabilities = _checked_quantiles(quantiles)
    dataset, spaces = _layout(product, probabilities)
    return dataset.assign(dict(_all_variables(product, spaces, probabilities)))


Space = tuple[list[str], dict[str, str]]  # a field's dimensions after step; its grid attributes


def _layout(product: Product, probabilities: np.ndarray) -> tuple[xr.Dataset, dict[str, Space]]:
    """The coordinates and global attributes, and each field's spatial dimensions."""
    level_sets = _suffixes([_level_set(f) for f in product.fields if _has_level_dimension(f)])
    grids = _suffixes([f.grid for f in product.fields])
    dataset = xr.Dataset(coords=_common_coordinates(product, probabilities))
    spaces = {}
    for product_field in product.fields:
        layout = grid_layout(product_field.grid, grids[product_field.grid])
        dataset = dataset.assign_coords(layout.coords)
        space = list(layout.dims)
        if _has_level_dimension(product_field):
            level = f"level{level_sets[_level_set(product_field)]}"
            dataset = dataset.assign_coords({level: _level_coordinate(product_field, level)})
            space.insert(0, level)
        spaces[product_field.name] = (space, layout.field_attrs)
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


def _level_set(product_field: ProductField) -> tuple[str, tuple[int, ...]]:
    return product_field.level_type, product_field.levels


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
        "time": xr.Variable((), init, _attrs("forecast_reference_time", "base time (UTC)")),
        "step": xr.Variable("step", steps, _attrs("forecast_period", "lead time")),
        "valid_time": xr.Variable("step", init + steps, _attrs("time", "valid time (UTC)")),
        "member": xr.Variable("member", members, _attrs("realization", "ensemble member")),
        "quantile": xr.Variable(
            "quantile", probabilities, {"long_name": "quantile over members", "units": "1"}
        ),
    }


def _level_coordinate(product_field: ProductField, dimension: str) -> xr.Variable:
    attrs = {
        "long_name": f"{product_field.level_type} level",
        "level_type": product_field.level_type,
    }
    if product_field.level_type == "isobaricInhPa":
        attrs |= {"units": "hPa", "positive": "down", "standard_name": "air_pressure"}
    elif product_field.level_type == "hybrid":
        attrs |= {"units": "1", "positive": "down", "comment": "IFS / ERA5 model level number"}
    return xr.Variable(dimension, np.array(product_field.levels, dtype=np.int32), attrs)


def _field_variables(
    product_field: ProductField, space_and_attrs: Space, probabilities: np.ndarray
) -> Iterator[tuple[str, xr.Variable]]:
    """The field's four variables, each computed only when asked for."""
    space, grid_attrs = space_and_attrs
    keep_level = _has_level_dimension(product_field)

    def shaped(values: np.ndarray) -> np.ndarray:
        return values if keep_level else values[..., 0, :, :]

    name, attrs = product_field.name, _field_attributes(product_field) | grid_attrs
    long_name = attrs["long_name"]
    yield name, xr.Variable(("member", "step", *space), shaped(product_field.values), attrs)
    yield (
        f"{name}_mean",
        xr.Variable(
            ("step", *space),
            shaped(product_field.mean()),
            attrs
            | {"long_name": f"{long_name}, ensemble mean", "cell_methods": "realization: mean"},
        ),
    )
    yield (
        f"{name}_spread",
        xr.Variable(
            ("step", *space),
            shaped(product_field.spread()),
            attrs
            | {
                "long_name": f"{long_name}, ensemble standard deviation (ddof=1)",
                "cell_methods": "realization: standard_deviation",
            },
        ),
    )
    yield (
        f"{name}_quantiles",
        xr.Variable(
            ("quantile", "step", *space),
            shaped(product_field.quantiles(probabilities)),
            attrs | {"long_name": f"{long_name}, quantiles over members"},
        ),
    )


def _field_attributes(product_field: ProductField) -> dict[str, Any]:
    catalogue = product_field.catalogue
    attrs: dict[str, Any] = {
        # ECMWF writes "~" for dimensionless; UDUNITS (and CF) spell it "1".
        "units": "1" if catalogue.units == "~" else catalogue.units,
        "long_name": catalogue.description,
        "GRIB_paramId": catalogue.param_id,
        "GRIB_shortName": catalogue.short_name,
    }
    if catalogue.name in _STANDARD_NAMES:
        attrs["standard_name"] = _STANDARD_NAMES[catalogue.name]
    if not _has_level_dimension(product_field):
        attrs |= {"level_type": product_field.level_type, "level": product_field.levels[0]}
    return attrs


def _global_attributes(product: Product) -> dict[str, Any]:
    return {
        **product.attributes,
        "Conventions": "CF-1.10",
        "title": f"AtmoRep {product.kind}",
        "product_kind": product.kind,
        "init": product.init.isoformat(),
        "ensemble_members": product.members,
    }


def _attrs(standard_name: str, long_name: str, **extra: str) -> dict[str, str]:
    return {"standard_name": standard_name, "long_name": long_name, **extra}
