"""Write GRIB (edition 2 or 1) with eccodes: one `GribMessage` per 2-D field on its grid.

Grids are regular lat-lon ("regular_ll") or rotated-pole ("rotated_ll", GRIB2 template 3.1: the
southern pole, angle 0, and the first / last points and increments in rotated coordinates).

The messages carry ECMWF's MARS keys (class, stream, type) in the local section the way ERA5 and
IFS files do, so that eccodes tools, cfgrib and our own reader see the same parameter, level,
date, time and step as in real ERA5 / IFS data. Analyses use step 0 at the valid time; forecasts
use the base time plus a step in hours; ensemble members add their number (and, when given, the
ensemble size). Screen-level parameters stored on "surface" (2t as ERA5's GRIB1 has it) go to
GRIB2 on "heightAboveGround" 2 (10 for winds), the only way GRIB2 can hold them.

Packing is simple packing with `bits_per_value` bits (16 by default, as ERA5): a value comes back
within (max - min) / (2**bits - 1) of what was written, e.g. 1.5 mK for a 100 K range of
temperature at 16 bits. Ask for 24 bits where that is not enough.

Files are written to `path + ".tmp"` and renamed into place only when every message is written,
so a failed or interrupted run never leaves a half-written file under the final name.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import eccodes
import numpy as np

from atmorep_core.fields import lookup
from atmorep_core.grid import LatLonGrid
from atmorep_core.rotated_grid import RotatedGrid

LEVEL_TYPES = ("hybrid", "isobaricInhPa", "surface", "heightAboveGround", "meanSea")

# ERA5's GRIB1 files put screen-level parameters on "surface" level 0 (so our store records them
# that way); GRIB2 defines them by their height above ground, and eccodes turns paramId 167 on
# "surface" into paramId 130 (t). paramId -> height in metres of 2t, 2d, 10u, 10v.
_GRIB2_HEIGHT_ABOVE_GROUND = {167: 2, 168: 2, 165: 10, 166: 10}


@dataclass(frozen=True, eq=False)
class GribMessage:
    """One 2-D field at one level and one time, as a GRIB message will hold it.

    `param` is anything `fields.lookup` accepts: a canonical name, a shortName or a paramId.
    `values` has the grid's shape (rows, columns), rows in the grid's (rotated) latitude order.
    The valid time is `base_time + step_hours`; accumulated fields (e.g. precipitation)
    accumulate from the base time to the step, as in ECMWF forecasts.
    """

    param: str | int
    level_type: str
    level: int
    base_time: datetime
    values: np.ndarray
    grid: LatLonGrid | RotatedGrid
    step_hours: int = 0
    number: int | None = None  # ensemble member; None for a deterministic field
    ecmwf_class: str = "ea"
    stream: str = "oper"
    data_type: str = "an"  # MARS type: an, fc, cf, pf, ...
    edition: int = 2
    bits_per_value: int = 16
    ensemble_size: int | None = None  # members in the ensemble (pf, em, es); None: not stated

    def __post_init__(self) -> None:
        if self.level_type not in LEVEL_TYPES:
            raise ValueError(f"level type {self.level_type!r} is not one of {LEVEL_TYPES}")
        if self.edition not in (1, 2):
            raise ValueError(f"GRIB edition must be 1 or 2, got {self.edition}")
        if self.values.shape != self.grid.shape:
            raise ValueError(f"values have shape {self.values.shape}, the grid {self.grid.shape}")
        if not np.all(np.isfinite(self.values)):
            raise ValueError(f"{self.param} at level {self.level} has non-finite values")
        if self.step_hours < 0 or not 1 <= self.bits_per_value <= 32:
            raise ValueError(f"bad step {self.step_hours} or bits {self.bits_per_value}")
        if self.ensemble_size is not None and self.ensemble_size < 1:
            raise ValueError(f"ensemble size must be at least 1, got {self.ensemble_size}")

    @property
    def valid_time(self) -> datetime:
        return self.base_time + timedelta(hours=self.step_hours)


def encode(message: GribMessage) -> bytes:
    """The bytes of one GRIB message; ValueError if eccodes cannot express it as asked."""
    handle = eccodes.codes_new_from_message(_template(message))
    try:
        _set_time(handle, message)
        _set_values(handle, message)
        return bytes(eccodes.codes_get_message(handle))
    finally:
        eccodes.codes_release(handle)


# Setting every key costs about 8 ms a message; cloning a finished message of the same
# parameter, level, grid and labels and setting only time and values, about 1 ms.
_TEMPLATES: dict[tuple[object, ...], bytes] = {}
_PER_MESSAGE = ("values", "base_time", "step_hours")


def _template(message: GribMessage) -> bytes:
    key = tuple(getattr(message, f.name) for f in fields(message) if f.name not in _PER_MESSAGE)
    if key not in _TEMPLATES:
        if len(_TEMPLATES) >= 4096:  # bound the cache in long-running processes
            _TEMPLATES.clear()
        _TEMPLATES[key] = _build(message)
    return _TEMPLATES[key]


def _build(message: GribMessage) -> bytes:
    handle = eccodes.codes_grib_new_from_samples(f"GRIB{message.edition}")
    try:
        _set_mars_keys(handle, message)
        _set_parameter_and_level(handle, message)
        _set_time(handle, message)
        _set_grid(handle, message.grid)
        _set_values(handle, message)
        return bytes(eccodes.codes_get_message(handle))
    finally:
        eccodes.codes_release(handle)


def _set_values(handle: int, message: GribMessage) -> None:
    # Asked every time: a template made from a constant field was packed with 0 bits.
    eccodes.codes_set(handle, "bitsPerValue", message.bits_per_value)
    eccodes.codes_set_values(handle, np.asarray(message.values, dtype=np.float64).ravel())


def _set_mars_keys(handle: int, message: GribMessage) -> None:
    if message.edition == 2:
        # The local section (definition 1, MARS labelling) is where ECMWF keeps class/stream/type.
        eccodes.codes_set(handle, "grib2LocalSectionPresent", 1)
        eccodes.codes_set(handle, "localDefinitionNumber", 1)
    eccodes.codes_set(handle, "class", message.ecmwf_class)
    eccodes.codes_set(handle, "stream", message.stream)
    eccodes.codes_set(handle, "type", message.data_type)
    if message.number is not None:
        if message.edition == 2:
            # Template 1 (template 11 once accumulated) holds an ensemble member's number.
            eccodes.codes_set(handle, "productDefinitionTemplateNumber", 1)
        eccodes.codes_set(handle, "number", message.number)
    if message.ensemble_size is not None:
        eccodes.codes_set(handle, "numberOfForecastsInEnsemble", message.ensemble_size)


def grib_level(param_id: int, level_type: str, level: int, edition: int) -> tuple[str, int]:
    """The (typeOfLevel, level) that GRIB `edition` uses for a parameter stored on `level_type`.

    Only screen-level parameters differ: 2t on "surface" 0 (ERA5 GRIB1) is "heightAboveGround" 2
    in GRIB2, as ECMWF's GRIB2 files and cfgrib have it.
    """
    if edition == 2 and level_type == "surface" and param_id in _GRIB2_HEIGHT_ABOVE_GROUND:
        return "heightAboveGround", _GRIB2_HEIGHT_ABOVE_GROUND[param_id]
    return level_type, level


def _set_parameter_and_level(handle: int, message: GribMessage) -> None:
    param_id = lookup(message.param).param_id
    level_type, level = grib_level(param_id, message.level_type, message.level, message.edition)
    # paramId first: in GRIB2 it can rewrite the level type (msl -> meanSea), so the level is
    # set after it and both are read back to catch a pair that GRIB cannot express.
    eccodes.codes_set(handle, "paramId", param_id)
    eccodes.codes_set(handle, "typeOfLevel", level_type)
    eccodes.codes_set(handle, "level", level)
    written = (eccodes.codes_get(handle, "paramId"), eccodes.codes_get(handle, "typeOfLevel"))
    if written != (param_id, level_type):
        raise ValueError(
            f"GRIB{message.edition} cannot hold paramId {param_id} on {level_type!r} "
            f"(eccodes made it {written[0]} on {written[1]!r})"
        )


def _set_time(handle: int, message: GribMessage) -> None:
    base = message.base_time
    eccodes.codes_set(handle, "dataDate", base.year * 10000 + base.month * 100 + base.day)
    eccodes.codes_set(handle, "dataTime", base.hour * 100 + base.minute)
    eccodes.codes_set(handle, "stepUnits", "h")
    if lookup(message.param).accumulated:
        eccodes.codes_set(handle, "stepType", "accum")
        eccodes.codes_set(handle, "startStep", 0)
        eccodes.codes_set(handle, "endStep", message.step_hours)
    else:
        eccodes.codes_set(handle, "step", message.step_hours)


def _set_grid(handle: int, grid: LatLonGrid | RotatedGrid) -> None:
    if isinstance(grid, RotatedGrid):
        _set_rotated_grid(handle, grid)
        return
    eccodes.codes_set(handle, "Ni", grid.nlon)
    eccodes.codes_set(handle, "Nj", grid.nlat)
    eccodes.codes_set(handle, "latitudeOfFirstGridPointInDegrees", grid.lat_first)
    eccodes.codes_set(handle, "latitudeOfLastGridPointInDegrees", grid.lat_last)
    # GRIB stores longitudes in 0 .. 360; a grid from -180 comes out as one from 180.
    eccodes.codes_set(handle, "longitudeOfFirstGridPointInDegrees", grid.lon_first % 360.0)
    eccodes.codes_set(handle, "longitudeOfLastGridPointInDegrees", grid.lon_last % 360.0)
    eccodes.codes_set(handle, "iDirectionIncrementInDegrees", abs(grid.lon_step))
    eccodes.codes_set(handle, "jDirectionIncrementInDegrees", abs(grid.lat_step))
    eccodes.codes_set(handle, "iScansNegatively", 0)
    eccodes.codes_set(handle, "jScansPositively", int(grid.lat_step > 0))


def _set_rotated_grid(handle: int, grid: RotatedGrid) -> None:
    # eccodes reads this header back as `RotatedGrid` defines its axes: columns evenly spaced
    # from first to last longitude, rows by the j increment, the last row at the last latitude.
    eccodes.codes_set(handle, "gridType", "rotated_ll")
    eccodes.codes_set(handle, "Ni", grid.ni)
    eccodes.codes_set(handle, "Nj", grid.nj)
    eccodes.codes_set(handle, "latitudeOfSouthernPoleInDegrees", grid.south_pole_lat)
    eccodes.codes_set(handle, "longitudeOfSouthernPoleInDegrees", grid.south_pole_lon % 360.0)
    eccodes.codes_set(handle, "angleOfRotationInDegrees", grid.angle)
    eccodes.codes_set(handle, "latitudeOfFirstGridPointInDegrees", grid.rlat_first)
    eccodes.codes_set(handle, "latitudeOfLastGridPointInDegrees", grid.rlat_last)
    eccodes.codes_set(handle, "longitudeOfFirstGridPointInDegrees", grid.rlon_first % 360.0)
    eccodes.codes_set(handle, "longitudeOfLastGridPointInDegrees", grid.rlon_last % 360.0)
    eccodes.codes_set(handle, "iDirectionIncrementInDegrees", round(grid.rlon_step, 6))
    eccodes.codes_set(handle, "jDirectionIncrementInDegrees", abs(grid.rlat_step))
    eccodes.codes_set(handle, "iScansNegatively", 0)
    eccodes.codes_set(handle, "jScansPositively", int(grid.rlat_step > 0))


class GribWriter:
    """Appends messages to `path + ".tmp"`; renames it to `path` only on a clean exit.

    Use it as a context manager. Leaving the block with an exception removes the temporary file
    and leaves any earlier file at `path` untouched.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.temporary = Path(f"{self.path}.tmp")
        self.count = 0
        self._file: BinaryIO | None = None

    def __enter__(self) -> GribWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.temporary, "wb")  # closed in __exit__
        return self

    def write(self, message: GribMessage) -> None:
        if self._file is None:
            raise RuntimeError("GribWriter.write outside its `with` block")
        self._file.write(encode(message))
        self.count += 1

    def __exit__(
        self,
        error_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._file is None:
            return
        self._file.close()
        self._file = None
        if error_type is None:
            os.replace(self.temporary, self.path)
        else:
            self.temporary.unlink(missing_ok=True)


def write_messages(path: Path | str, messages: Iterable[GribMessage]) -> None:
    """Write `messages` (any iterable, consumed once) to one GRIB file, atomically."""
    with GribWriter(path) as writer:
        for message in messages:
            writer.write(message)
