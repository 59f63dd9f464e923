"""The store's arrays through tensorstore: opening one, writing rows shard by shard, and telling a
failure of the file system (which tensorstore reports as a ValueError) from a damaged store."""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tensorstore as ts

from atmorep_core.errors import FileSystemError, StoreError
from atmorep_core.io import filesystem


def tensorstore_spec(array_path: Path) -> dict[str, Any]:
    """How tensorstore opens one array of a store on the local file system (which refuses a
    path with '..' in it: resolved here)."""
    return {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(array_path.resolve())}}


def open_fast(array_path: Path) -> ts.TensorStore:
    try:
        return ts.open(tensorstore_spec(array_path), open=True).result()
    except ValueError as error:
        raise StoreError(
            f"{array_path}: missing or corrupt zarr.json ({short_message(error)})"
        ) from error


def write_rows(array: ts.TensorStore, start: int, values: np.ndarray) -> Callable[[], None]:
    """Start writing `values` into `array` from row `start`, one write per shard file; the
    function returned waits for all and raises the first failure only when none is in flight
    any more. (A single write over many shards reports a full disk at its first failure while
    the others go on, and a late one would land after the rollback.)"""
    shard = _shard_shape(array)
    region = [(start, start + len(values)), *((0, n) for n in values.shape[1:])]
    pieces = [
        _shard_pieces(low, high, size) for (low, high), size in zip(region, shard, strict=True)
    ]
    futures = []
    for box in itertools.product(*pieces):
        target = tuple(slice(low, high) for low, high in box)
        source = (slice(box[0][0] - start, box[0][1] - start), *target[1:])
        futures.append(array[target].write(values[source]))

    def wait() -> None:
        failures = []
        for future in futures:
            try:
                future.result()
            except Exception as failure:  # the first is raised once all are done
                failures.append(failure)
        if failures:
            raise failures[0]

    return wait


def _shard_shape(array: ts.TensorStore) -> tuple[int, ...]:
    layout = array.chunk_layout.write_chunk.shape
    assert layout is not None and None not in layout, "the store's arrays are sharded"
    return tuple(int(n) for n in layout if n is not None)


def _shard_pieces(low: int, high: int, size: int) -> list[tuple[int, int]]:
    """[low, high) cut at multiples of `size`."""
    cuts = [low, *range((low // size + 1) * size, high, size), high]
    return list(itertools.pairwise(cuts))


def short_message(error: Exception) -> str:
    """An error's message without tensorstore's spec dump."""
    return str(error).split(" [tensorstore_spec=")[0]


_TENSORSTORE_OS_ERROR = re.compile(r'local file "([^"]+)".*\[os_error_code=.(\d+).\]')


def filesystem_error(error: BaseException, where: Path) -> FileSystemError | None:
    """The FileSystemError for an OSError of the environment (full disk, read-only file system,
    permissions, wrong file types; `io.filesystem`), also where tensorstore reports one as a
    ValueError; None for anything else. `where` names the path when the error does not."""
    if isinstance(error, ValueError) and (found := _TENSORSTORE_OS_ERROR.search(str(error))):
        code = int(found.group(2))
        error = OSError(code, os.strerror(code), found.group(1))
    if not filesystem.is_environmental(error):
        return None
    assert isinstance(error, OSError)
    return FileSystemError(filesystem.describe(error, error.filename or where))
