"""Coarse copies of GRIB files: every message's field averaged over blocks of factor x factor
points (ERA5 at 0.25 degree -> 1 degree with factor 4), keeping all other keys.

This makes the coarse half of downscaling pairs from a fine file, for training and scoring a
downscaling checkpoint. A coarse point sits at the centre of its block; rows and columns that do
not fill a whole block (at the south and east edges) are dropped. Regular lat-lon grids only.
"""

from __future__ import annotations

from pathlib import Path

import eccodes

from atmorep_core.errors import InputDataError
from atmorep_core.io.grib_messages import transform


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
