"""Failures of the environment, not of the user's request or data: a full disk, a read-only file
system, a missing permission, a path of the wrong type. Each becomes one FileSystemError (exit
code 7) that names the path and the system's reason, e.g. `cannot write /products/x.nc: No space
left on device`.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from atmorep_core.errors import FileSystemError

# The errno values that say the machine, not the request, is at fault.
ENVIRONMENT = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
        errno.EISDIR,
        errno.ENOTDIR,
        errno.EEXIST,
        errno.ENAMETOOLONG,
        errno.EFBIG,
    }
)
_WRITING = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})
# Below this much free space a library's own error (netCDF-4 says "NetCDF: HDF error") is taken
# for a full disk: more than the 4 MiB chunks netCDF-4 writes at once, less than any real product.
FULL_BYTES = 16 << 20
# A product run's files are written here first (`io.run_folder`); messages name the final path.
STAGING = ".atmorep.staging"


def is_environmental(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in ENVIRONMENT


def describe(error: OSError, path: Path | str | None = None) -> str:
    """`cannot write PATH: REASON` (read or write as the errno says, `access` where it could be
    either); the path of the error itself where none is given."""
    where = path if path is not None else error.filename
    verb = "write" if error.errno in _WRITING else "access"
    reason = error.strerror or str(error)
    return f"cannot {verb} {where}: {reason}" if where is not None else f"cannot {verb}: {reason}"


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Raise environment failures while writing `path` as FileSystemError naming `path`.

    A library that reports a full disk in its own words is recognised by the free space left, so
    this must run before the half-written file is removed.
    """
    try:
        yield
    except FileSystemError:
        raise
    except OSError as error:
        if error.errno not in ENVIRONMENT:
            raise
        raise FileSystemError(_cannot_write(path, error.strerror or str(error))) from error
    except Exception as error:
        if not _nearly_full(path):
            raise
        reason = os.strerror(errno.ENOSPC)
        raise FileSystemError(_cannot_write(path, f"{reason} ({error})")) from error


def ensure_folder(folder: Path) -> None:
    """Create `folder` (and its parents); FileSystemError if a file is in its way or the file
    system refuses."""
    for parent in (folder, *folder.parents):
        if parent.exists() and not parent.is_dir():
            raise FileSystemError(f"cannot write {folder}: {parent} is a file, not a folder")
    with writing(folder):
        folder.mkdir(parents=True, exist_ok=True)


def _cannot_write(path: Path, reason: str) -> str:
    final = Path(*(part for part in path.parts if part != STAGING))
    return f"cannot write {final}: {reason}"


def _nearly_full(path: Path) -> bool:
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is None:
        return False
    status = os.statvfs(existing)
    return status.f_bavail * status.f_frsize < FULL_BYTES
