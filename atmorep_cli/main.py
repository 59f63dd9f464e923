"""Entry point: the Typer app, its commands, and the mapping of user errors to exit codes.

Exit codes: 0 success; 1 unexpected failure; 2 invalid option or recipe; 3 bad input data;
4 store missing or mismatched; 5 store or output folder locked by another run; 6 input times
not (yet) available; 130 interrupted.
"""

from __future__ import annotations

import sys

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
from atmorep_core.errors import AtmorepError

app = typer.Typer(
    name="atmorep",
    help="AtmoRep: one stochastic model of atmospheric dynamics, many weather products.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("sample")(sample.command)
app.command("prepare")(prepare.command)
app.command("info")(info.command)
app.command("model")(model.command)
app.command("train")(train.command)
app.command("forecast")(forecast.command)
app.command("evaluate")(evaluate.command)
app.command("correct")(correct_cli.command)
app.command("interpolate")(interpolate.command)
app.command("counterfactual")(counterfactual.command)
app.command("downscale")(downscale.command)
app.command("bias-correct")(bias_correct.command)


def run() -> None:
    """Console-script entry: one clear line and a non-zero exit code for every user error."""
    try:
        app(standalone_mode=False)
    except AtmorepError as error:
        err.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        err.print("[bold red]interrupted[/]")
        sys.exit(130)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as click_error:  # click's usage errors carry their own exit code
        exit_code = getattr(click_error, "exit_code", None)
        if exit_code is None:
            raise
        show = getattr(click_error, "show", None)
        if callable(show):
            show()
        sys.exit(exit_code)
