"""What the product commands (forecast, interpolate, counterfactual) share: their common options,
the run log, the progress bar and the report of the run's manifest.

Exit codes as for every command (`main.py`): 2 a bad option, 3 bad input data, 4 a missing
store, 5 the output folder locked by another run, 6 input times not (yet) there.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from atmorep_cli.console import err, out
from atmorep_cli.progress import progress_bar
from atmorep_cli.runlog import Log, run_log

if TYPE_CHECKING:
    from atmorep_core.product_outputs import OutputOptions

Manifest = dict[str, Any]
Progress = Callable[[str, float], None]

CHECKPOINT = typer.Option(
    ..., help="Run folder (its latest checkpoint) or checkpoint.", resolve_path=True
)
STORE = typer.Option(None, help="Input store; default: the training store.", resolve_path=True)
INPUTS = typer.Option([], "--input", help="GRIB input files (repeatable).", resolve_path=True)
STATS_STORE = typer.Option(
    None,
    help="Store of local normalisation statistics; default: the training store.",
    resolve_path=True,
)
MEMBERS = typer.Option(1, help="Ensemble members (1: the mean over the model's heads).")
SEED = typer.Option(0, help="Seed of the members' draws.")
AREA = typer.Option(None, help="N/W/S/E in degrees; default: the whole grid.")
FORMATS = typer.Option("grib,netcdf", "--format", help="grib, netcdf or grib,netcdf (both).")
PLOT = typer.Option([], help="Write maps of this field (repeatable).")
BATCH = typer.Option(16, help="Tiles per model call.")
DEVICE = typer.Option("cpu", help="cpu or cuda.")
FORCE = typer.Option(False, help="Recompute even if the outputs are up to date.")
LOG = typer.Option(None, help="Log file; default: OUT/atmorep.log.", resolve_path=True)
AS_JSON = typer.Option(False, "--json", help="Print the run's manifest as JSON.")
ALLOW_IMPLAUSIBLE = typer.Option(
    False,
    "--allow-implausible",
    help="Accept input values outside their field's physically plausible range (for "
    "experiments); by default such a file is refused (exit 3) naming the message, value and range.",
)
ALLOW_UNFAMILIAR = typer.Option(
    False,
    "--allow-unfamiliar",
    help="Process input outside the checkpoint's experience (a region, month or values far from "
    "its training data) with a warning in the log and the manifest, instead of refusing it "
    "(exit 3).",
)


def output_options(
    formats: str, plot: Sequence[str], plot_steps: Sequence[int] = ()
) -> OutputOptions:
    """--format, --plot and the lead hours to map (none given: the last)."""
    from atmorep_core.product_outputs import OutputOptions

    return OutputOptions(
        formats=tuple(f.strip() for f in formats.split(",") if f.strip()),
        plot_fields=tuple(plot),
        plot_steps=tuple(plot_steps) or None,
    )


def run_product_command(
    what: str, out_dir: Path, log: Path | None, as_json: bool, job: Callable[[Progress], Manifest]
) -> None:
    """Run `job` (which parses the options, then runs) with the log and a progress bar, then
    print its manifest (--json) or one line."""
    with run_log(log or out_dir / "atmorep.log") as write_log:
        with progress_bar(what, quiet=as_json) as progress:
            manifest = job(progress)
        warn_unfamiliar(manifest, write_log)
        write_log(("up to date " if manifest["skipped"] else "done ") + json.dumps(manifest))
    if as_json:
        out.print_json(json.dumps(manifest))
    elif manifest["skipped"]:
        out.print(f"[green]up to date[/]: {out_dir} already holds this {what} (--force redoes it)")
    else:
        files = ", ".join(manifest["outputs"])
        out.print(f"[green]{what}[/] {manifest['seconds']} s: {files} in {out_dir}")


def warn_unfamiliar(manifest: Manifest, write_log: Log) -> None:
    """Log each finding on input outside the checkpoint's experience that the run processed
    (--allow-unfamiliar), and warn on stderr in one line."""
    findings = manifest.get("unfamiliar") or []
    for finding in findings:
        write_log(f"warning: outside the checkpoint's experience: {finding}")
    if findings:
        err.print(
            "[yellow]warning:[/] processed input outside the checkpoint's experience "
            f"(--allow-unfamiliar): {'; '.join(findings)}",
            highlight=False,
            soft_wrap=True,
        )
