"""GRIB messages of any grid as flat point values, and rewriting a file with some values changed.

`prepare` (io/grib_read.py) reads regular grids into a store; a correction works on the input's
own grid instead, whatever it is (regular or reduced Gaussian, regular lat-lon, ...), so it sees a
field as values at points (eccodes' `latitudes` / `longitudes`) of the messages that
`grib_scan.scan_headers` found, each read at its place in the file. `rewrite` writes a copy of
the file in which chosen messages are clones of the originals with new values, and every other
message is copied byte for byte.

GRIB2 messages keep their edition and every key but the values and the generating process
(`typeOfGeneratingProcess` 13, post-processed analysis, or 14, post-processed forecast, WMO code
table 4.3). GRIB1 has no such key, so a corrected GRIB1 message is converted to GRIB2 by eccodes
first and then marked the same way: products are GRIB2, and only the passed-through GRIB1
messages stay GRIB1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import eccodes
import numpy as np

from atmorep_core.errors import InputDataError
from atmorep_core.io.grib_scan import MessageHeader
from atmorep_core.io.product import atomic_output
from atmorep_core.regrid import Points

POST_PROCESSED_ANALYSIS = 13
POST_PROCESSED_FORECAST = 14
_ANALYSIS_PROCESSES = {0, 1, 7, 13}  # analysis, initialisation, analysis error, post-processed


def read_points(path: Path, message: MessageHeader) -> Points:
    """The latitudes and longitudes of a message's values, in value order."""
    with _opened(path, message) as handle:
        return Points(
            eccodes.codes_get_array(handle, "latitudes").astype(np.float64),
            eccodes.codes_get_array(handle, "longitudes").astype(np.float64),
        )


def read_values(path: Path, message: MessageHeader) -> np.ndarray:
    """A message's values, flat, float64."""
    with _opened(path, message) as handle:
        return eccodes.codes_get_values(handle).astype(np.float64)


class _opened:
    """The message at a header's offset, as an eccodes handle released on exit."""

    def __init__(self, path: Path, message: MessageHeader) -> None:
        self.path, self.message = path, message

    def __enter__(self) -> int:
        with open(self.path, "rb") as stream:
            stream.seek(self.message.offset)
            handle = eccodes.codes_grib_new_from_file(stream)
        if handle is None:
            raise InputDataError(f"{self.path}: message {self.message.index + 1} vanished")
        self.handle: int = handle
        return handle

    def __exit__(self, *exc: object) -> None:
        eccodes.codes_release(self.handle)


def rewrite(source: Path, target: Path, values: Mapping[int, np.ndarray]) -> int:
    """Copy `source` to `target` (atomically) with new values for the messages whose index is
    in `values`, each marked as post-processed; returns the number of messages written."""
    count = 0
    with atomic_output(target) as temporary, open(temporary, "wb") as out:
        for index, handle in enumerate(_handles(source)):
            try:
                if index in values:
                    out.write(_post_processed(handle, values[index]))
                else:
                    out.write(eccodes.codes_get_message(handle))
            finally:
                eccodes.codes_release(handle)
            count += 1
    return count


def transform(source: Path, target: Path, change: Callable[[int, int], bytes | None]) -> int:
    """Write `target` (atomically) from `change(handle, index)` of every message of `source`
    (None: leave the message out); the number of messages written. InputDataError if none."""
    count = 0
    with atomic_output(target) as temporary, open(temporary, "wb") as out:
        for index, handle in enumerate(_handles(source)):
            try:
                written = change(handle, index)
            finally:
                eccodes.codes_release(handle)
            if written is not None:
                out.write(written)
                count += 1
    if count == 0:
        raise InputDataError(f"{source}: no GRIB message written from the file")
    return count


def _is_analysis(handle: int) -> bool:
    if eccodes.codes_get_long(handle, "edition") == 2:
        return eccodes.codes_get_long(handle, "typeOfGeneratingProcess") in _ANALYSIS_PROCESSES
    if eccodes.codes_is_defined(handle, "marsType"):  # GRIB1: ECMWF's local MARS type
        return str(eccodes.codes_get(handle, "marsType")) == "an"
    return _step_hours(handle) == 0


def _step_hours(handle: int) -> int:
    eccodes.codes_set(handle, "stepUnits", "h")  # steps in minutes or days read as hours
    return int(eccodes.codes_get_long(handle, "endStep"))


def _handles(path: Path) -> Iterator[int]:
    with open(path, "rb") as stream:
        while (handle := eccodes.codes_grib_new_from_file(stream)) is not None:
            yield handle


def _post_processed(handle: int, values: np.ndarray) -> bytes:
    """The bytes of a clone of `handle` holding `values`, marked as post-processed (GRIB2)."""
    clone = eccodes.codes_clone(handle)
    try:
        analysis = _is_analysis(clone)
        if eccodes.codes_get_long(clone, "edition") == 1:
            eccodes.codes_set_long(clone, "edition", 2)
        marked = POST_PROCESSED_ANALYSIS if analysis else POST_PROCESSED_FORECAST
        eccodes.codes_set_long(clone, "typeOfGeneratingProcess", marked)
        eccodes.codes_set_values(clone, np.asarray(values, dtype=np.float64))
        return bytes(eccodes.codes_get_message(clone))
    finally:
        eccodes.codes_release(clone)
