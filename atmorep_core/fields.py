"""Field catalogue: canonical names and the GRIB identities (shortName, paramId) they come as.

ERA5 and IFS name a parameter by paramId (with a shortName alias); the store and the model use the
canonical name. Lookups accept any of the three. A field is stored in its catalogue unit; files in
another unit are converted on ingest (`units.py`), e.g. DWD's tp (paramId 228228, kg m-2).
"""

from __future__ import annotations

from dataclasses import dataclass

from atmorep_core.errors import InputDataError


@dataclass(frozen=True)
class Field:
    name: str  # canonical name used by the store, recipes and the model
    short_name: str  # ECMWF shortName
    param_id: int  # ECMWF paramId (GRIB1 table 128 / GRIB2 mapping by eccodes)
    units: str
    description: str
    accumulated: bool = False  # accumulated over a period ending at the valid time
    # Points a file's bitmap marks missing are kept as NaN in the store (never used for training
    # or products) instead of refusing the message: radar-based or regional precipitation.
    allows_missing: bool = False
    non_negative: bool = False  # small negative values from GRIB packing are clipped to 0


CATALOGUE: tuple[Field, ...] = (
    Field("vorticity", "vo", 138, "s**-1", "relative vorticity"),
    Field("divergence", "d", 155, "s**-1", "divergence"),
    Field("velocity_u", "u", 131, "m s**-1", "eastward wind"),
    Field("velocity_v", "v", 132, "m s**-1", "northward wind"),
    Field("velocity_z", "w", 135, "Pa s**-1", "vertical velocity (omega)"),
    Field("temperature", "t", 130, "K", "air temperature"),
    Field("specific_humidity", "q", 133, "kg kg**-1", "specific humidity"),
    Field(
        "total_precip",
        "tp",
        228,
        "m",
        "total precipitation",
        accumulated=True,
        allows_missing=True,
        non_negative=True,
    ),
    Field("t2m", "2t", 167, "K", "2 metre temperature"),
    Field("geopotential", "z", 129, "m**2 s**-2", "geopotential"),
    Field("relative_humidity", "r", 157, "%", "relative humidity"),
    Field("lnsp", "lnsp", 152, "~", "logarithm of surface pressure"),
    Field("surface_pressure", "sp", 134, "Pa", "surface pressure"),
    Field("msl", "msl", 151, "Pa", "mean sea level pressure"),
)

_BY_NAME = {f.name: f for f in CATALOGUE}
_BY_SHORT = {f.short_name: f for f in CATALOGUE}
_BY_PARAM = {f.param_id: f for f in CATALOGUE}


def lookup(key: str | int) -> Field:
    """The field for a canonical name, a shortName or a paramId; InputDataError if unknown."""
    if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
        found = _BY_PARAM.get(int(key))
    else:
        found = _BY_NAME.get(key) or _BY_SHORT.get(key)
    if found is None:
        known = ", ".join(sorted(_BY_NAME))
        raise InputDataError(f"unknown parameter {key!r} (known fields: {known})")
    return found


def from_grib(short_name: str, param_id: int) -> Field:
    """The field of a GRIB message, by paramId first (shortNames differ between tables)."""
    field = _BY_PARAM.get(param_id) or _BY_SHORT.get(short_name)
    if field is None:
        raise InputDataError(
            f"unknown parameter {short_name!r} (paramId {param_id}); "
            "select known fields with --fields or add it to the catalogue"
        )
    return field
