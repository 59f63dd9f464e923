"""An append-only log file of a product run, for operators reading what cron did overnight."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

from atmorep_core.errors import AtmorepError, FileSystemError
from atmorep_core.io.filesystem import ensure_folder, writing

Log = Callable[[str], None]


@contextmanager
def run_log(path: Path) -> Iterator[Log]:
    """Yields a function that appends a timestamped line; logs the command, the end or the error.
    A log that cannot be written raises FileSystemError, except while an error is logged: that
    error is the one to report."""
    ensure_folder(path.parent)

    def write(message: str) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        with writing(path), open(path, "a", encoding="utf-8") as file:
            file.write(f"{stamp} {message}\n")

    write("start " + json.dumps(sys.argv[1:]))
    try:
        yield write
    except AtmorepError as error:
        with suppress(FileSystemError):
            write(f"error (exit {error.exit_code}) {error}")
        raise
    except BaseException as error:
        with suppress(FileSystemError):
            write(f"failed {type(error).__name__}: {error}")
        raise
