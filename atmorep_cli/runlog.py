"""An append-only log file of a product run, for operators reading what cron did overnight."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from atmorep_core.errors import AtmorepError

Log = Callable[[str], None]


@contextmanager
def run_log(path: Path) -> Iterator[Log]:
    """Yields a function that appends a timestamped line; logs the command, the end or the error."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(message: str) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        with open(path, "a", encoding="utf-8") as file:
            file.write(f"{stamp} {message}\n")

    write("start " + json.dumps(sys.argv[1:]))
    try:
        yield write
    except AtmorepError as error:
        write(f"error (exit {error.exit_code}) {error}")
        raise
    except BaseException as error:
        write(f"failed {type(error).__name__}: {error}")
        raise
