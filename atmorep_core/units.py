"""Unit conversion on ingest: a GRIB message's units (as eccodes names them) to the store's.

The store keeps each field in the catalogue's unit (`fields.Field.units`). Only conversions that
are exact by definition are known: precipitation as a mass of water per area (kg m-2, what DWD
and GRIB2's "tp" paramId 228228 use) is a depth of water in mm, i.e. a thousandth of a metre
(ECMWF's tp, paramId 228), taking water's density as 1000 kg m-3 as both centres do.
Dimensionless fields (lnsp) carry different names for "no unit" in GRIB1 and GRIB2 tables.
"""

from __future__ import annotations

from atmorep_core.errors import InputDataError

# (unit in the file, unit in the store) -> factor that turns the first into the second.
_FACTORS: dict[tuple[str, str], float] = {
    ("kg m**-2", "m"): 1e-3,
    ("mm", "m"): 1e-3,
    ("m", "kg m**-2"): 1e3,
}


# What eccodes calls "no unit": "~" in GRIB1 tables, "Numeric" in GRIB2 ones.
_DIMENSIONLESS = frozenset({"~", "Numeric", "1", "dimensionless"})


def conversion_factor(found: str, wanted: str, what: str) -> float:
    """Factor from `found` to `wanted` units; InputDataError naming `what` if none is known."""
    if found == wanted or {found, wanted} <= _DIMENSIONLESS:
        return 1.0
    factor = _FACTORS.get((found, wanted))
    if factor is None:
        raise InputDataError(
            f"{what} is in {found!r}, which cannot be converted to the store's {wanted!r}"
        )
    return factor
