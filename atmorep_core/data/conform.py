"""Decoded values into the store's conventions, block by block, before they are written.

- Units: values are multiplied by the plan's factor into the catalogue unit (e.g. DWD's kg m-2 of
  precipitation into metres, `units.py`), in float64 before rounding to the store's float32.
- Missing values: fields that allow them keep NaN (decoded from the bitmap); elsewhere NaN, and
  infinities everywhere, are refused naming the field and time.
- Non-negativity (precipitation): GRIB packing returns a value only within its precision, so a
  dry point can come back slightly below zero; negative values down to `NEGATIVE_TOLERANCE` times
  the message's largest magnitude (packing with 10 bits or more stays within it), or down to
  `NEGATIVE_FLOOR` in the store's unit (1 micrometre of rain) for almost dry messages, are set
  to 0. Anything more negative is no packing error but a wrong input, and is refused.
"""

from __future__ import annotations

import numpy as np

from atmorep_core.data.ingest_plan import FieldPlan
from atmorep_core.errors import InputDataError

NEGATIVE_TOLERANCE = 2.0**-10
NEGATIVE_FLOOR = 1e-6


def conform(values: np.ndarray, plan: FieldPlan, where: str, time: np.datetime64) -> np.ndarray:
    """One decoded 2-D message (float32 or float64) as float32 in the store's conventions."""
    field = plan.field
    if plan.scale != 1.0:
        values = np.asarray(values, dtype=np.float64) * plan.scale
    finite = np.isfinite(values)
    if not finite.all():
        infinite = bool(np.isinf(values).any())
        if infinite or not field.allows_missing:
            raise InputDataError(
                f"{where}: field {field.name} has NaN or infinite values at {time}"
            )
    if field.non_negative:
        values = _clip_negative(values, field.name, where, time)
    return np.asarray(values, dtype=np.float32)


def _clip_negative(values: np.ndarray, name: str, where: str, time: np.datetime64) -> np.ndarray:
    lowest = float(np.nanmin(values)) if not np.isnan(values).all() else 0.0
    if lowest >= 0.0:
        return values
    largest = float(np.nanmax(np.abs(values)))
    if lowest < -max(NEGATIVE_TOLERANCE * largest, NEGATIVE_FLOOR):
        raise InputDataError(
            f"{where}: field {name} has negative values down to {lowest:.6g} at {time}; "
            "it cannot be negative (more than GRIB packing explains)"
        )
    return np.where(values < 0.0, 0.0, values)  # NaN stays NaN
