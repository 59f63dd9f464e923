"""One pass over a GRIB file's messages with eccodes: every message's header, the one type that
every reader of GRIB works from (`prepare`, a correction, reading a product back).

Parameter identities and grids are looked up once per distinct raw key combination: eccodes'
concept lookups (paramId, shortName) cost more than the decoding of a small field, and a file of
thousands of messages holds few distinct ones. `read_grids` reads each grid as the regular
lat-lon or Gaussian grid that `prepare` ingests, refusing any other; without it the grid is left
to the reader (a correction takes any grid as points, `grib_messages.read_points`). With
`keep_values` small fields are decoded during the scan, since opening a message costs as much as
decoding a small field.

Points a message's bitmap marks missing are decoded as NaN, never as eccodes' `missingValue`
(9999 by default, a plausible amount of rain in mm). Accumulated fields (`fields.Field.accumulated`)
carry the length of their accumulation period, which ends at the valid time: stepRange start-end
(stepType accum), or from the forecast's start to its step where ECMWF's GRIB1 encodes an
accumulation as an instantaneous step (timeRangeIndicator 0, e.g. IFS tp at step 24).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import eccodes
import numpy as np

from atmorep_core import fields, rotated_grid
from atmorep_core.errors import InputDataError
from atmorep_core.grid import GaussianGrid, LatLonGrid, gaussian_latitudes

SUPPORTED_GRIDS = ("regular_ll", "regular_gg", "rotated_ll")
SMALL_FIELD_POINTS = 100_000  # above this, decoding dominates the cost of opening a message
# Level types whose parameter identity does not depend on the level value (GRIB1, GRIB2 codes).
_LEVEL_FREE_TYPES = {(1, 109), (1, 100), (2, 105), (2, 100)}
_HOUR = np.timedelta64(1, "h")


@dataclass(frozen=True)
class MessageHeader:
    """What a message holds and where it lies in its file, without its values (unless kept)."""

    path: Path
    index: int  # position of the message in its file, from 0
    offset: int  # byte offset of the message in its file
    short_name: str
    param_id: int
    level_type: str
    level: int
    base_time: np.datetime64  # dataDate / dataTime, UTC, seconds
    valid_time: np.datetime64  # UTC, seconds
    member: int  # ensemble number; 0 for deterministic data
    data_type: str  # MARS type: "an", "fc", "pf", "cf", "em", ...
    grid_type: str  # eccodes' gridType, e.g. "regular_ll", "reduced_gg"
    grid_key: str  # md5 of the grid section: messages with the same key share their points
    grid: LatLonGrid | GaussianGrid | None  # read only by a scan with `read_grids`
    missing: int  # number of points flagged missing by the bitmap
    units: str = ""  # as eccodes names the parameter's units, e.g. "m", "kg m**-2"
    accumulation_s: int | None = None  # accumulated fields: seconds up to the valid time
    values: np.ndarray | None = field(default=None, compare=False, repr=False)  # kept if small

    @property
    def where(self) -> str:
        return f"{self.path.name} message {self.index + 1}"

    @property
    def step_hours(self) -> int:
        """Hours from the base time to the valid time (the end of a step range)."""
        return int((self.valid_time - self.base_time) // _HOUR)

    @property
    def regular_grid(self) -> LatLonGrid | GaussianGrid:
        """The grid as `prepare` reads it; only a scan with `read_grids` knows it."""
        if self.grid is None:
            raise ValueError(f"{self.where}: scanned without reading its grid")
        return self.grid


def scan_headers(
    path: Path, *, read_grids: bool = False, keep_values: bool = False
) -> list[MessageHeader]:
    """Every message's header; InputDataError naming the file if it is not readable GRIB, or
    (with `read_grids`) naming a message whose grid `prepare` cannot read."""
    headers: list[MessageHeader] = []
    lookups = _Lookups(read_grids)
    try:
        with open(path, "rb") as stream:
            while (handle := eccodes.codes_grib_new_from_file(stream)) is not None:
                try:
                    headers.append(_header(path, len(headers), handle, lookups, keep_values))
                finally:
                    eccodes.codes_release(handle)
    except eccodes.GribInternalError as error:
        raise InputDataError(
            f"{path}: unreadable GRIB after {len(headers)} good message(s) "
            f"(corrupted or truncated file: {error})"
        ) from error
    except OSError as error:
        raise InputDataError(f"{path}: cannot read file ({error.strerror})") from error
    if not headers:
        raise InputDataError(f"{path}: no GRIB messages in file")
    return headers


def decoded_values(handle: int, missing: int) -> np.ndarray:
    """The message's values, flat float64, NaN where its bitmap says missing (eccodes would
    give 9999)."""
    values = np.asarray(eccodes.codes_get_values(handle), dtype=np.float64)
    if missing:
        present = np.asarray(eccodes.codes_get_array(handle, "bitmap")) != 0
        values[~present] = np.nan
    return values


class _Lookups:
    """Per-scan caches of parameter identities and grids, keyed by cheap raw keys."""

    def __init__(self, read_grids: bool) -> None:
        self.read_grids = read_grids
        self.params: dict[tuple[int, ...], tuple[str, int, str, str]] = {}
        self.grids: dict[str, tuple[str, LatLonGrid | GaussianGrid | None]] = {}

    def param(self, handle: int) -> tuple[str, int, str, str]:
        """(shortName, paramId, typeOfLevel, units) of a message."""
        key = _raw_param_key(handle)
        if key not in self.params:
            get = eccodes.codes_get
            self.params[key] = (
                str(get(handle, "shortName")),
                int(get(handle, "paramId")),
                str(get(handle, "typeOfLevel")),
                str(get(handle, "units")),
            )
        return self.params[key]

    def grid(
        self, handle: int, key: str, where: str
    ) -> tuple[str, LatLonGrid | GaussianGrid | None]:
        """(gridType, the grid if read) of a message whose grid section has md5 `key`."""
        if key not in self.grids:
            grid_type = str(eccodes.codes_get(handle, "gridType"))
            grid = _grid(handle, grid_type, where) if self.read_grids else None
            self.grids[key] = (grid_type, grid)
        return self.grids[key]


def _raw_param_key(handle: int) -> tuple[int, ...]:
    get = eccodes.codes_get_long
    edition = get(handle, "edition")
    if edition == 1:
        key = [edition, *(get(handle, k) for k in _GRIB1_PARAM_KEYS)]
    else:
        key = [edition, *(get(handle, k) for k in _GRIB2_PARAM_KEYS)]
    if (edition, key[-1]) not in _LEVEL_FREE_TYPES:
        key.append(get(handle, "level"))
    return tuple(key)


_GRIB1_PARAM_KEYS = ("centre", "table2Version", "indicatorOfParameter", "indicatorOfTypeOfLevel")
_GRIB2_PARAM_KEYS = (
    "centre",
    "discipline",
    "parameterCategory",
    "parameterNumber",
    "productDefinitionTemplateNumber",
    "typeOfSecondFixedSurface",
    "typeOfFirstFixedSurface",
)


def _header(
    path: Path, index: int, handle: int, lookups: _Lookups, keep_values: bool
) -> MessageHeader:
    get = eccodes.codes_get_long  # typed gets: a plain codes_get first asks for the key's type
    where = f"{path.name} message {index + 1}"
    short_name, param_id, level_type, units = lookups.param(handle)
    member = get(handle, "number") if eccodes.codes_is_defined(handle, "number") else 0
    grid_key = eccodes.codes_get_string(handle, "md5GridSection")
    grid_type, grid = lookups.grid(handle, grid_key, where)
    missing = int(get(handle, "numberOfMissing"))
    return MessageHeader(
        path=path,
        index=index,
        offset=int(get(handle, "offset")),
        short_name=short_name,
        param_id=param_id,
        level_type=level_type,
        level=int(get(handle, "level")),
        base_time=_time(handle, "dataDate", "dataTime"),
        valid_time=_time(handle, "validityDate", "validityTime"),
        member=int(member or 0),
        data_type=eccodes.codes_get_string(handle, "dataType"),
        grid_type=grid_type,
        grid_key=grid_key,
        grid=grid,
        missing=missing,
        units=units,
        accumulation_s=_accumulation_s(handle, short_name, param_id),
        values=_kept_values(handle, grid, missing) if keep_values else None,
    )


def _kept_values(
    handle: int, grid: LatLonGrid | GaussianGrid | None, missing: int
) -> np.ndarray | None:
    """A small field's values as float32 (the store's precision), on its grid if read."""
    shape = grid.shape if grid is not None else (int(eccodes.codes_get_size(handle, "values")),)
    points = int(np.prod(shape))
    if points >= SMALL_FIELD_POINTS:
        return None
    values = decoded_values(handle, missing).astype(np.float32)
    return values.reshape(shape)


def _accumulation_s(handle: int, short_name: str, param_id: int) -> int | None:
    """Seconds of accumulation up to the valid time; None for fields that are not accumulated.

    Changes the handle's step units: call it after every other key has been read."""
    try:
        if not fields.from_grib(short_name, param_id).accumulated:
            return None
    except InputDataError:
        return None  # an unknown parameter is refused, if selected, while planning
    eccodes.codes_set_string(handle, "stepUnits", "s")
    end = int(eccodes.codes_get_long(handle, "endStep"))
    if eccodes.codes_get(handle, "stepType") == "instant":
        return end  # ECMWF GRIB1: accumulated from the forecast's start (timeRangeIndicator 0)
    return end - int(eccodes.codes_get_long(handle, "startStep"))


def _time(handle: int, date_key: str, time_key: str) -> np.datetime64:
    """A GRIB date (YYYYMMDD) and time (HHMM) as numpy seconds (GRIB times are UTC)."""
    get = eccodes.codes_get_long
    date, time = int(get(handle, date_key)), int(get(handle, time_key))
    moment = datetime(date // 10000, date // 100 % 100, date % 100, time // 100, time % 100)
    return np.datetime64(moment, "s")


def _grid(handle: int, grid_type: str, where: str) -> LatLonGrid | GaussianGrid:
    get = eccodes.codes_get
    if grid_type not in SUPPORTED_GRIDS:
        raise InputDataError(
            f"{where}: grid type {grid_type!r} is not supported here "
            f"(supported: {', '.join(SUPPORTED_GRIDS)})"
        )
    if grid_type == "rotated_ll":  # regular in its rotated frame (COSMO, the UM)
        return LatLonGrid.from_rotated(rotated_grid.from_handle(handle, where))
    if get(handle, "iScansNegatively") or get(handle, "jPointsAreConsecutive"):
        raise InputDataError(f"{where}: unusual scanning mode; expected ERA5's row order")
    ni, nj = int(get(handle, "Ni")), int(get(handle, "Nj"))
    lon_first = float(get(handle, "longitudeOfFirstGridPointInDegrees"))
    if grid_type == "regular_gg":
        lats = gaussian_latitudes(int(get(handle, "N")))
        south_to_north = get(handle, "jScansPositively")
        return GaussianGrid(lats[::-1] if south_to_north else lats, lon_first, ni)
    lat_first = float(get(handle, "latitudeOfFirstGridPointInDegrees"))
    lat_last = float(get(handle, "latitudeOfLastGridPointInDegrees"))
    lon_last = float(get(handle, "longitudeOfLastGridPointInDegrees"))
    if lon_last < lon_first:  # the grid crosses the meridian where longitudes restart
        lon_last += 360.0
    lat_step = (lat_last - lat_first) / (nj - 1) if nj > 1 else 0.0
    lon_step = (lon_last - lon_first) / (ni - 1) if ni > 1 else 0.0
    return LatLonGrid(lat_first, lat_step, nj, lon_first, lon_step, ni)
