"""Copies of GRIB files with every message's values changed by a function, all keys kept.

This makes the model-output half of bias-correction pairs from a reference file: the reference
with a known, state-dependent error added (the skill check's "biased model"), read by `prepare`
exactly as the original. Missing points (bitmap) stay missing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import eccodes
import numpy as np

from atmorep_core.io.grib_messages import transform

Change = Callable[[datetime, np.ndarray], np.ndarray]
"""(valid time, values (Nj, Ni) with NaN where missing) -> the new values, same shape."""


def write_changed_copy(
    source: Path, target: Path, change: Change, between: tuple[datetime, datetime] | None = None
) -> int:
    """Write `source` to `target` with each message's values passed through `change`, keeping
    only valid times `between` (inclusive) when given; the message count. Regular grids only
    (the values are handed over as rows and columns)."""

    def changed(handle: int, _: int) -> bytes | None:
        valid = _valid_time(handle)
        if between is not None and not between[0] <= valid <= between[1]:
            return None
        return _changed(handle, valid, change)

    return transform(source, target, changed)


def _changed(handle: int, valid: datetime, change: Change) -> bytes:
    ni, nj = eccodes.codes_get(handle, "Ni"), eccodes.codes_get(handle, "Nj")
    missing_value = eccodes.codes_get_double(handle, "missingValue")
    values = eccodes.codes_get_values(handle).reshape(nj, ni)
    missing = (
        values == missing_value
        if eccodes.codes_get(handle, "bitmapPresent")
        else np.zeros(values.shape, bool)
    )
    new = np.asarray(change(valid, np.where(missing, np.nan, values)), np.float64)
    if new.shape != values.shape:
        raise ValueError(f"the change returned {new.shape} values for a {values.shape} field")
    clone = eccodes.codes_clone(handle)
    try:
        eccodes.codes_set_values(clone, np.where(missing, missing_value, new).ravel())
        return bytes(eccodes.codes_get_message(clone))
    finally:
        eccodes.codes_release(clone)


def _valid_time(handle: int) -> datetime:
    date, time = (
        eccodes.codes_get_long(handle, "validityDate"),
        eccodes.codes_get_long(handle, "validityTime"),
    )
    return datetime.strptime(f"{date:08d}", "%Y%m%d") + timedelta(
        hours=time // 100, minutes=time % 100
    )
