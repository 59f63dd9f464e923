"""User errors and failures of the environment as one `error:` line and an exit code (the
table in `main.py`); a traceback only for a bug (exit 1)."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer

from atmorep_cli.console import err
from atmorep_core.errors import AtmorepError, FileSystemError
from atmorep_core.io.filesystem import describe, is_environmental


def run_mapping_errors(app: typer.Typer) -> None:
    """Run the app: one clear line and a non-zero exit code for every user error and every
    failure of the environment (an OSError such as a full disk that no command turned into a
    FileSystemError naming its path)."""
    try:
        app(standalone_mode=False)
    except AtmorepError as error:
        _fail(error)
    except OSError as error:
        if not is_environmental(error):
            raise
        _fail(FileSystemError(describe(error)))
    except KeyboardInterrupt:
        err.print("[bold red]interrupted[/]")
        sys.exit(130)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as usage:  # click's usage errors (Typer vendors its own click)
        exit_code = getattr(usage, "exit_code", None)
        if exit_code is None:
            raise
        if type(usage).__name__ == "NoArgsIsHelpError":
            usage.show()  # type: ignore[attr-defined]
        else:
            _usage_line(usage, exit_code)
        sys.exit(exit_code)


def _fail(error: AtmorepError) -> NoReturn:
    # Messages from libraries (xarray, eccodes) may span lines: a failure is always one line.
    message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    sys.exit(error.exit_code)


def _usage_line(usage: Exception, exit_code: int) -> None:
    """A bad or missing option as one `error:` line naming the command, like every error."""
    context = getattr(usage, "ctx", None)
    command = f"{context.command_path}: " if context is not None else ""
    message = getattr(usage, "format_message", lambda: str(usage))()
    err.print(f"[bold red]error:[/] {command}{message}", highlight=False, soft_wrap=True)
