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

from atmorep_cli.console import out
from atmorep_cli.progress import progress_bar
from atmorep_cli.runlog import run_log

if TYPE_CHECKING:
    from atmorep_core.io.product_outputs import OutputOptions

Manifest = dict[str, Any]
Progress = Callable[[str, float], None]

CHECKPOINT = typer.Option(..., help="Run folder (its latest checkpoint) or checkpoint.")
STORE = typer.Option(None, help="Input store; default: the training store.")
INPUTS = typer.Option([], "--input", help="GRIB input files (repeatable).")
STATS_STORE = typer.Option(
    None, help="Store of local normalisation statistics; default: the training store."
)
MEMBERS = typer.Option(1, help="Ensemble members (1: the mean over the model's heads).")
SEED = typer.Option(0, help="Seed of the members' draws.")
AREA = typer.Option(None, help="N/W/S/E in degrees; default: the whole grid.")
FORMATS = typer.Option("grib,netcdf", "--format", help="grib, netcdf or both.")
PLOT = typer.Option([], help="Write maps of this field (repeatable).")
BATCH = typer.Option(16, help="Tiles per model call.")
DEVICE = typer.Option("cpu", help="cpu or cuda.")
FORCE = typer.Option(False, help="Recompute even if the outputs are up to date.")
LOG = typer.Option(None, help="Log file; default: OUT/atmorep.log.")
AS_JSON = typer.Option(False, "--json", help="Print the run's manifest as JSON.")


def output_options(
    formats: str, plot: Sequence[str], plot_steps: Sequence[int] = ()
) -> OutputOptions:
    """--format, --plot and the lead hours to map (none given: the last)."""
    from atmorep_core.io.product_outputs import OutputOptions

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
        write_log(("up to date " if manifest["skipped"] else "done ") + json.dumps(manifest))
    if as_json:
        out.print_json(json.dumps(manifest))
    elif manifest["skipped"]:
        out.print(f"[green]up to date[/]: {out_dir} already holds this {what} (--force redoes it)")
    else:
        files = ", ".join(manifest["outputs"])
        out.print(f"[green]{what}[/] {manifest['seconds']} s: {files} in {out_dir}")
