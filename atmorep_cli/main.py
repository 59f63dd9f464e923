"""Entry point: the Typer app, its commands, and the mapping of user errors to exit codes.

Exit codes: 0 success; 1 unexpected failure; 2 invalid option or recipe; 3 bad input data;
4 store or checkpoint missing, corrupt or mismatched; 5 store or output folder locked by another
run; 6 input times not (yet) available, or the store being updated; 7 cannot read or write (disk
full, read-only file system, permission, a path of the wrong type); 130 interrupted.
"""

from __future__ import annotations

import typer

from atmorep_cli import (
    bias_correct,
    counterfactual,
    downscale,
    evaluate,
    forecast,
    import_atmorep,
    info,
    interpolate,
    model,
    prepare,
    sample,
    train,
)
from atmorep_cli import correct as correct_cli
from atmorep_cli.exits import run_mapping_errors

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
app.command("import-atmorep", epilog=EXIT_CODES)(import_atmorep.command)


def run() -> None:
    """Console-script entry: one clear line and a non-zero exit code for every user error and
    every failure of the environment (`exits.run_mapping_errors`)."""
    run_mapping_errors(app)
