"""Run the atmorep CLI and kill it (SIGKILL, as `kill -9`) right after its Nth rename into a folder.

    python tests/rename_killer.py N FOLDER ARGS...

N = 0 never kills and prints `renames: COUNT` on stderr at exit, the number of renames an
uninterrupted run makes into FOLDER. The product code has no test hook: the wrapper replaces
`os.replace` and `os.rename`, through which every rename of the standard library passes.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

Rename = Callable[..., None]


def main() -> None:
    kill_after, folder, *args = sys.argv[1:]
    inside = Path(folder).resolve()
    count = 0

    def counted(rename: Rename) -> Rename:
        def wrapper(source: Any, target: Any, *rest: Any, **options: Any) -> None:
            nonlocal count
            rename(source, target, *rest, **options)
            if Path(target).resolve().is_relative_to(inside):
                count += 1
                if count == int(kill_after):
                    os.kill(os.getpid(), signal.SIGKILL)

        return wrapper

    os.replace, os.rename = counted(os.replace), counted(os.rename)
    atexit.register(lambda: print(f"renames: {count}", file=sys.stderr))
    sys.argv = ["atmorep", *args]
    from atmorep_cli.main import run

    run()


if __name__ == "__main__":
    main()
