"""Entry point: the Typer app, its commands, and the mapping of user errors to exit codes.

Exit codes: 0 success; 1 unexpected failure; 2 invalid option or recipe; 3 bad input data;
4 store or checkpoint missing, corrupt or mismatched; 5 store or output folder locked by another
run; 6 input times not (yet) available, or the store being updated; 7 cannot read or write (disk
full, read-only file system, permission, a path of the wrong type); 130 interrupted.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import typer

from atmorep_cli import (
    bias_correct,
    counterfactual,
    downscale,
    evaluate,
    forecast,
    info,
    interpolate,
    model,
    prepare,
    sample,
    train,
)
from atmorep_cli import correct as correct_cli
from atmorep_cli.console import err
from atmorep_core.errors import AtmorepError, FileSystemError
from atmorep_core.io.filesystem import describe, is_environmental

EXIT_CODES = (
    "Exit codes: 0 done; 1 a bug (please report it); 2 invalid option or recipe; 3 bad input data"
    " (unreadable, implausible, or unfamiliar to the checkpoint); 4 store or checkpoint missing,"
    " corrupt or mismatched; 5 locked by another run; 6 input times not there yet, or the store"
    " being updated (retry later); 7 cannot read or write (disk full, read-only, permission, a"
    " path of the wrong type); 130 interrupted."
)

app = typer.Typer(
    name="atmorep",
    help="AtmoRep: one stochastic model of atmospheric dynamics, many weather products.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("sample", epilog=EXIT_CODES)(sample.command)
app.command("prepare", epilog=EXIT_CODES)(prepare.command)
app.command("info", epilog=EXIT_CODES)(info.command)
app.command("model", epilog=EXIT_CODES)(model.command)
app.command("train", epilog=EXIT_CODES)(train.command)
app.command("forecast", epilog=EXIT_CODES)(forecast.command)
app.command("evaluate", epilog=EXIT_CODES)(evaluate.command)
app.command("correct", epilog=EXIT_CODES)(correct_cli.command)
app.command("interpolate", epilog=EXIT_CODES)(interpolate.command)
app.command("counterfactual", epilog=EXIT_CODES)(counterfactual.command)
app.command("downscale", epilog=EXIT_CODES)(downscale.command)
app.command("bias-correct", epilog=EXIT_CODES)(bias_correct.command)


def run() -> None:
    """Console-script entry: one clear line and a non-zero exit code for every user error and
    every failure of the environment (an OSError such as a full disk that no command turned
    into a FileSystemError naming its path)."""
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
