"""Reading GRIB1 / GRIB2 with eccodes: a header scan, then the values of chosen messages.

A whole file is scanned and checked before anything is written. Small fields in files up to
`KEEP_VALUES_BYTES` are decoded during that scan and kept (as float32, the store's precision),
since opening a message costs as much as decoding a small field; large fields are decoded later,
message by message, by seeking to each message's offset, overlapping with the writes.
Parameter and grid identities are looked up once per distinct raw key combination: eccodes'
concept lookups (paramId, shortName) cost more than the decoding of a small field.

Points a message's bitmap marks missing are decoded as NaN, never as eccodes' `missingValue`
(9999 by default, a plausible amount of rain in mm). Accumulated fields (`fields.Field.accumulated`)
carry the length of their accumulation period, which ends at the valid time: stepRange start-end
(stepType accum), or from the forecast's start to its step where ECMWF's GRIB1 encodes an
accumulation as an instantaneous step (timeRangeIndicator 0, e.g. IFS tp at step 24).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import eccodes
import numpy as np

from atmorep_core import fields, rotated_grid
from atmorep_core.errors import InputDataError
from atmorep_core.grid import GaussianGrid, LatLonGrid, gaussian_latitudes

SUPPORTED_GRIDS = ("regular_ll", "regular_gg", "rotated_ll")
KEEP_VALUES_BYTES = 256 * 2**20
SMALL_FIELD_POINTS = 100_000  # above this, decoding dominates the cost of opening a message
# Level types whose parameter identity does not depend on the level value (GRIB1, GRIB2 codes).
_LEVEL_FREE_TYPES = {(1, 109), (1, 100), (2, 105), (2, 100)}


@dataclass(frozen=True)
class MessageHeader:
    """What a message holds, without its values."""

    path: Path
    index: int  # position of the message in its file, from 0
    offset: int  # byte offset of the message in its file
    short_name: str
    param_id: int
    level_type: str
    level: int
    valid_time: np.datetime64  # UTC, seconds
    member: int  # ensemble number; 0 for deterministic data
    grid: LatLonGrid | GaussianGrid
    missing: int  # number of points flagged missing by the bitmap
    units: str = ""  # as eccodes names the parameter's units, e.g. "m", "kg m**-2"
    accumulation_s: int | None = None  # accumulated fields: seconds up to the valid time
    values: np.ndarray | None = field(default=None, compare=False, repr=False)  # kept if small

    @property
    def where(self) -> str:
        return f"{self.path.name} message {self.index + 1}"


def scan(path: Path, keep_values: bool | None = None) -> list[MessageHeader]:
    """Headers of every message in a GRIB file; InputDataError naming the file if unreadable.

    With `keep_values` (default: for files up to KEEP_VALUES_BYTES) the values come along."""
    if keep_values is None:
        keep_values = path.stat().st_size <= KEEP_VALUES_BYTES
    headers: list[MessageHeader] = []
    lookups = _Lookups()
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


def decode(headers: Sequence[MessageHeader]) -> Iterator[np.ndarray]:
    """Values of the given messages, in order, each (nlat, nlon) on the message's own grid."""
    streams: dict[Path, object] = {}
    try:
        for header in headers:
            stream = streams.get(header.path)
            if stream is None:
                stream = streams[header.path] = open(header.path, "rb")  # noqa: SIM115
            yield _decode_one(stream, header)
    finally:
        for stream in streams.values():
            stream.close()  # type: ignore[attr-defined]


def _decode_one(stream: object, header: MessageHeader) -> np.ndarray:
    if header.values is not None:
        return header.values
    stream.seek(header.offset)  # type: ignore[attr-defined]
    try:
        handle = eccodes.codes_grib_new_from_file(stream)
        if handle is None:
            raise InputDataError(f"{header.where}: message vanished (file changed while reading)")
        try:
            values = _values(handle, header.missing)
        finally:
            eccodes.codes_release(handle)
    except eccodes.GribInternalError as error:
        raise InputDataError(f"{header.where}: cannot decode values ({error})") from error
    return values.reshape(header.grid.shape)


def _values(handle: int, missing: int) -> np.ndarray:
    """The message's values, NaN where its bitmap says missing (eccodes would give 9999)."""
    values = np.asarray(eccodes.codes_get_values(handle), dtype=np.float64)
    if missing:
        present = np.asarray(eccodes.codes_get_array(handle, "bitmap")) != 0
        values[~present] = np.nan
    return values


class _Lookups:
    """Per-scan caches of parameter identities and grids, keyed by cheap raw keys."""

    def __init__(self) -> None:
        self.params: dict[tuple[int, ...], tuple[str, int, str, str]] = {}
        self.grids: dict[str, LatLonGrid | GaussianGrid] = {}

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

    def grid(self, handle: int, where: str) -> LatLonGrid | GaussianGrid:
        key = str(eccodes.codes_get(handle, "md5GridSection"))
        if key not in self.grids:
            self.grids[key] = _grid(handle, where)
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
    get = eccodes.codes_get
    where = f"{path.name} message {index + 1}"
    short_name, param_id, level_type, units = lookups.param(handle)
    member = get(handle, "number") if eccodes.codes_is_defined(handle, "number") else 0
    grid = lookups.grid(handle, where)
    missing = int(get(handle, "numberOfMissing"))
    values = None
    if keep_values and grid.shape[0] * grid.shape[1] < SMALL_FIELD_POINTS:
        values = _values(handle, missing).astype(np.float32).reshape(grid.shape)
    return MessageHeader(
        path=path,
        index=index,
        offset=int(get(handle, "offset")),
        short_name=short_name,
        param_id=param_id,
        level_type=level_type,
        level=int(get(handle, "level")),
        valid_time=_valid_time(handle),
        member=int(member or 0),
        grid=grid,
        missing=missing,
        units=units,
        accumulation_s=_accumulation_s(handle, short_name, param_id),
        values=values,
    )


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


def _valid_time(handle: int) -> np.datetime64:
    date = int(eccodes.codes_get(handle, "validityDate"))
    time = int(eccodes.codes_get(handle, "validityTime"))
    moment = datetime(date // 10000, date // 100 % 100, date % 100, time // 100, time % 100)
    return np.datetime64(moment, "s")  # GRIB times are UTC; numpy datetimes carry no zone


def _grid(handle: int, where: str) -> LatLonGrid | GaussianGrid:
    get = eccodes.codes_get
    grid_type = get(handle, "gridType")
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
