"""CF names and attributes of the catalogue's fields and level types, shared by the CF NetCDF
products (`io/netcdf.py`) and the store's self-description (`io/store_metadata.py`)."""

from __future__ import annotations

from typing import Any

from atmorep_core.fields import lookup

# CF standard names of the catalogue's fields, where one fits exactly.
STANDARD_NAMES = {
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

# Vertical coordinates by GRIB typeOfLevel: the dimension's name and its CF attributes. Model
# level numbers are CF's `model_level_number`: no formula terms are needed for the number itself.
_VERTICAL: dict[str, tuple[str, dict[str, str]]] = {
    "hybrid": (
        "model_level",
        {"standard_name": "model_level_number", "long_name": "model level number", "units": "1"}
        | {"positive": "down", "axis": "Z"},
    ),
    "isobaricInhPa": (
        "pressure",
        {"standard_name": "air_pressure", "long_name": "pressure", "units": "hPa"}
        | {"positive": "down", "axis": "Z"},
    ),
    "heightAboveGround": (
        "height",
        {"standard_name": "height", "long_name": "height above ground", "units": "m"}
        | {"positive": "up", "axis": "Z"},
    ),
}


def cf_units(units: str) -> str:
    """ECMWF writes "~" for dimensionless; UDUNITS (and CF) spell it "1"."""
    return "1" if units == "~" else units


def field_attributes(name: str, units: str | None = None) -> dict[str, Any]:
    """units, long_name and (where one fits) standard_name of a catalogue field; `units` as a
    store records them, else the catalogue's."""
    field = lookup(name)
    attrs: dict[str, Any] = {
        "units": cf_units(units or field.units),
        "long_name": field.description,
    }
    if field.name in STANDARD_NAMES:
        attrs["standard_name"] = STANDARD_NAMES[field.name]
    return attrs


def is_vertical(level_type: str) -> bool:
    """Whether a level type is a CF vertical coordinate (not "surface" or "meanSea")."""
    return level_type in _VERTICAL


def vertical_name(level_type: str) -> str:
    """The dimension name of a level type's levels: `model_level`, `pressure`, `height`, else
    the GRIB typeOfLevel itself."""
    return _VERTICAL[level_type][0] if level_type in _VERTICAL else level_type


def level_attributes(level_type: str) -> dict[str, str]:
    """CF attributes of a level coordinate, with the GRIB level type it came as."""
    attrs = {"long_name": f"{level_type} level"}
    if level_type in _VERTICAL:
        attrs = dict(_VERTICAL[level_type][1])
    return attrs | {"GRIB_typeOfLevel": level_type}
