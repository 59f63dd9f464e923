"""The CLI as a case runs it: in this process (`atmorep_cli.main.run` with `sys.argv` set, the
console script's own error handling, at the cost of a function call), or, for cases that could
run for ever or exhaust the machine's memory until they are fixed, in a subprocess under a time
and memory limit."""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import pytest

from tests.helpers import atmorep_exit_code

PROJECT = Path(__file__).resolve().parents[2]
ISOLATED_TIMEOUT_S = 60  # a refusal comes at once; only a run that hangs takes this long
ISOLATED_MEMORY = 4 << 30  # the refusals under test compare with physical memory, not this


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str


def invoke(args: Sequence[str]) -> int:
    """`atmorep ARGS` in this process (`helpers.atmorep_exit_code`); its exit code. Two things
    pytest would hide are shown as a user sees them: warnings, on stderr, and an exception
    escaping `run`, as the console script's traceback and exit 1, so that a case reports it
    beside its other problems. Needs no capture fixture: the package's fixtures train with it."""
    with _warnings_printed():
        try:
            return atmorep_exit_code(*args)
        except Exception:
            traceback.print_exc()
            return 1


_QUIET_BY_DEFAULT = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


@contextmanager
def _warnings_printed() -> Iterator[None]:
    """Warnings on stderr under Python's default filters, as a user sees them (pytest would
    otherwise record them out of sight)."""

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    with warnings.catch_warnings():
        warnings.resetwarnings()
        for quiet in _QUIET_BY_DEFAULT:
            warnings.simplefilter("ignore", quiet)
        warnings.showwarning = show
        yield


def in_process(args: Sequence[str], capfd: pytest.CaptureFixture[str]) -> Outcome:
    """`invoke` with its output; captured at the file descriptors, where eccodes writes too."""
    capfd.readouterr()
    code = invoke(args)
    captured = capfd.readouterr()
    return Outcome(code, captured.out, captured.err)


_LIMITED = (
    "import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_AS, ({0}, {0})); "
    "sys.argv[0] = 'atmorep'; runpy.run_module('atmorep_cli', run_name='__main__')"
)


def isolated(args: Sequence[str], cwd: Path) -> Outcome:
    """`atmorep ARGS` in a subprocess with a memory limit, killed after ISOLATED_TIMEOUT_S; it
    imports this checkout, as this process does, whatever `cwd` is."""
    command = [sys.executable, "-c", _LIMITED.format(ISOLATED_MEMORY), *args]
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, cwd=cwd, env=env, timeout=ISOLATED_TIMEOUT_S
        )
    except subprocess.TimeoutExpired as expired:
        return Outcome(-9, str(expired.stdout), f"(still running after {ISOLATED_TIMEOUT_S} s)")
    return Outcome(done.returncode, done.stdout, done.stderr)
