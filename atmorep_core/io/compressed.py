"""GRIB files as DWD publishes them: bz2-compressed, one file per variable and month.

COSMO-REA6's open data, for instance, is `.../COSMO_REA6/hourly/2D/T_2M/T_2M.2D.201801.grb.bz2`.
eccodes reads only plain files, so a compressed file is decompressed into a temporary file
(streamed in blocks with the standard library, never whole in memory) that is removed when the
block using it ends, even on an error. `prepare` decompresses a file twice, once to check it and
once to ingest it, so that its temporary space holds one month, not a whole glob of them.
"""

from __future__ import annotations

import bz2
import contextlib
from collections.abc import Iterator
from pathlib import Path

from atmorep_core.errors import InputDataError

COMPRESSED_SUFFIX = ".bz2"
_BLOCK_BYTES = 16 * 2**20


def is_compressed(path: Path) -> bool:
    return path.suffix == COMPRESSED_SUFFIX


@contextlib.contextmanager
def plain_grib(path: Path, folder: Path) -> Iterator[Path]:
    """`path` itself, or the decompressed copy of a `.bz2` file in `folder` (created if needed,
    removed again once empty), named like the file less its suffix so messages name the month."""
    if not is_compressed(path):
        yield path
        return
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.stem
    try:
        decompress(path, target)
        yield target
    finally:
        target.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # another file's copy may still be there
            folder.rmdir()


def decompress(source: Path, target: Path) -> None:
    """Stream `source` (bz2) into `target`; InputDataError naming the file if it is corrupt."""
    with bz2.open(source, "rb") as packed, open(target, "wb") as plain:
        while block := _read_block(packed, source):
            try:
                plain.write(block)
            except OSError as error:
                raise InputDataError(
                    f"{source}: cannot write its decompressed copy {target} ({error.strerror})"
                ) from error


def _read_block(packed: bz2.BZ2File, source: Path) -> bytes:
    try:
        return packed.read(_BLOCK_BYTES)
    except (OSError, EOFError, ValueError) as error:  # bad data, truncated, not bz2 at all
        raise InputDataError(
            f"{source}: not a readable bz2 file, corrupted or truncated ({error})"
        ) from error
