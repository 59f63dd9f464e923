"""Run the atmorep CLI and kill it (SIGKILL, as `kill -9`) at the Nth of some named events.

    python tests/killer.py N EVENT[,EVENT...] ARGS...

An event is `before:MODULE.FUNCTION` (the function is about to be called) or
`after:MODULE.FUNCTION` (a call of it has returned), counted together in the order they happen.
N = 0 never kills and prints `events: COUNT` on stderr at exit. The product code has no test hook:
the wrapper replaces the module's attribute, which the module's own code looks up at every call.
A name that does not exist stops the run with a traceback (exit 1), so a renamed function fails
the kill trials instead of leaving them killing nothing.
"""

from __future__ import annotations

import atexit
import functools
import importlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

# The kill trials of `prepare`: per field, its data written (statistics not merged yet) and its
# statistics merged; per file, its source recorded (the last write before the commit).
INGEST_FAULT_POINTS = (
    "before:atmorep_core.data.prepare._merge_statistics",
    "after:atmorep_core.data.prepare._merge_statistics",
    "after:atmorep_core.data.prepare._record_source",
)
# The kill trials of `train`: the Nth event is the start of step N, after step N - 1 was logged,
# validated and (if due) saved.
STEP_STARTS = ("before:atmorep_core.training.trainer._step",)


def run_killed(
    kill_at: int, events: Sequence[str], *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `atmorep ARGS` in a fresh process, killed at the `kill_at`-th of `events`."""
    command = [sys.executable, __file__, str(kill_at), ",".join(events), *args]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=1800,  # a training run on a busy 2-core machine
    )


def main() -> None:
    kill_at, events, *args = sys.argv[1:]
    count = 0

    def passed() -> None:
        nonlocal count
        count += 1
        if count == int(kill_at):
            os.kill(os.getpid(), signal.SIGKILL)

    for event in events.split(","):
        when, name = event.split(":")
        _count_calls(name, when, passed)
    atexit.register(lambda: print(f"events: {count}", file=sys.stderr))
    sys.argv = ["atmorep", *args]
    from atmorep_cli.main import run

    run()


def _count_calls(name: str, when: str, passed: Callable[[], None]) -> None:
    """Replace the module-level function `name` by one that calls `passed` before or after it."""
    if when not in ("before", "after"):
        raise SystemExit(f"{when}:{name}: an event is before:NAME or after:NAME")
    module_name, attribute = name.rsplit(".", 1)
    module = importlib.import_module(module_name)
    function = getattr(module, attribute)

    @functools.wraps(function)
    def counted(*args: Any, **options: Any) -> Any:
        if when == "before":
            passed()
        result = function(*args, **options)
        if when == "after":
            passed()
        return result

    setattr(module, attribute, counted)


if __name__ == "__main__":
    main()
