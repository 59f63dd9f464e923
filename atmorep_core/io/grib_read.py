"""Reading GRIB1 / GRIB2 for `prepare`: a header scan (`grib_scan`), then the values of chosen
messages.

A whole file is scanned and checked before anything is written. Small fields in files up to
`KEEP_VALUES_BYTES` are decoded during that scan and kept (as float32, the store's precision);
large fields are decoded later, message by message, by seeking to each message's offset,
overlapping with the writes. Missing points come back as NaN (`grib_scan.decoded_values`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import eccodes
import numpy as np

from atmorep_core.errors import InputDataError
from atmorep_core.io.grib_scan import MessageHeader, decoded_values, scan_headers

KEEP_VALUES_BYTES = 256 * 2**20


def scan(path: Path, keep_values: bool | None = None) -> list[MessageHeader]:
    """Headers of every message in a GRIB file, each on a grid `prepare` reads; InputDataError
    naming the file if unreadable, or the message whose grid is not such a grid.

    With `keep_values` (default: for files up to KEEP_VALUES_BYTES) the values come along."""
    if keep_values is None:
        keep_values = path.stat().st_size <= KEEP_VALUES_BYTES
    return scan_headers(path, read_grids=True, keep_values=keep_values)


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
            values = decoded_values(handle, header.missing)
        finally:
            eccodes.codes_release(handle)
    except eccodes.GribInternalError as error:
        raise InputDataError(f"{header.where}: cannot decode values ({error})") from error
    return values.reshape(header.regular_grid.shape)
