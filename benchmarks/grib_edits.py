"""GRIB files made from others for experiments: a copy with every value changed by a function,
and a coarse copy of block means; all other keys of each message kept.

They make the halves of training pairs from one real file: the "model output" of a bias-correction
pair (the reference with a known, state-dependent error added, read by `prepare` exactly as the
original; missing points stay missing), and the coarse input of a downscaling pair (ERA5 at 0.25
degree -> 1 degree with factor 4: a coarse point sits at the centre of its block; rows and columns
that do not fill a whole block, at the south and east edges, are dropped). Regular lat-lon grids
only. Used by the tests and the skill benchmarks.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import eccodes
import numpy as np

from atmorep_core.errors import InputDataError
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


def write_block_means(source: Path, target: Path, factor: int) -> int:
    """Write the block means of every message of `source` to `target`; the message count."""
    if factor < 1:
        raise InputDataError(f"block size {factor}: must be at least 1")
    return transform(
        source, target, lambda handle, i: _coarse_message(handle, factor, f"{source.name} #{i + 1}")
    )


def _coarse_message(handle: int, factor: int, where: str) -> bytes:
    grid_type = eccodes.codes_get(handle, "gridType")
    if grid_type != "regular_ll":
        raise InputDataError(f"{where}: block means need a regular_ll grid, not {grid_type}")
    ni, nj = eccodes.codes_get(handle, "Ni"), eccodes.codes_get(handle, "Nj")
    rows, cols = nj // factor, ni // factor
    if rows == 0 or cols == 0:
        raise InputDataError(f"{where}: {nj} x {ni} points hold no {factor} x {factor} block")
    values = eccodes.codes_get_values(handle).reshape(nj, ni)[: rows * factor, : cols * factor]
    means = values.reshape(rows, factor, cols, factor).mean(axis=(1, 3))
    lat_step = _signed_step(handle, "j", "jScansPositively", positive_when=1)
    lon_step = _signed_step(handle, "i", "iScansNegatively", positive_when=0)
    lat0 = eccodes.codes_get_double(handle, "latitudeOfFirstGridPointInDegrees")
    lon0 = eccodes.codes_get_double(handle, "longitudeOfFirstGridPointInDegrees")
    centre = (factor - 1) / 2  # a block's centre, in fine steps from its first point
    first_lat, first_lon = lat0 + centre * lat_step, lon0 + centre * lon_step
    clone = eccodes.codes_clone(handle)
    try:
        keys = {
            "Ni": cols, "Nj": rows,
            "latitudeOfFirstGridPointInDegrees": first_lat,
            "longitudeOfFirstGridPointInDegrees": first_lon % 360.0,
            "latitudeOfLastGridPointInDegrees": first_lat + (rows - 1) * factor * lat_step,
            "longitudeOfLastGridPointInDegrees": (first_lon + (cols - 1) * factor * lon_step)
            % 360.0,
            "iDirectionIncrementInDegrees": abs(lon_step) * factor,
            "jDirectionIncrementInDegrees": abs(lat_step) * factor,
        }  # fmt: skip
        for key, value in keys.items():
            eccodes.codes_set(clone, key, value)
        eccodes.codes_set_values(clone, means.ravel())
        return bytes(eccodes.codes_get_message(clone))
    finally:
        eccodes.codes_release(clone)


def _signed_step(handle: int, axis: str, scan_key: str, positive_when: int) -> float:
    step = eccodes.codes_get_double(handle, f"{axis}DirectionIncrementInDegrees")
    return step if eccodes.codes_get(handle, scan_key) == positive_when else -step
