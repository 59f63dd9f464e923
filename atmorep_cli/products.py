"""The options that several product commands share, declared once, and the job they describe.

Exit codes as for every command (`main.py`): 2 a bad option, 3 bad input data, 4 a missing
store, 5 the output folder locked by another run, 6 input times not (yet) there.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from atmorep_core.jobs.product_job import ProductJob

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
FORMATS = typer.Option(
    "grib,netcdf",
    "--format",
    help="Comma-separated: grib (GRIB2), netcdf (CF NetCDF), csv (area means per lead).",
)
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


def product_job(
    *,
    checkpoint: Path,
    out_dir: Path,
    store: Path | None,
    inputs: Sequence[Path],
    stats_store: Path | None,
    formats: str,
    plot: Sequence[str],
    plot_steps: Sequence[int],
    device: str,
    force: bool,
    allow_unfamiliar: bool,
    allow_implausible: bool,
) -> ProductJob:
    """The job of a folder product's shared options; --plot-lead/--plot-time as lead hours
    (none given: the last)."""
    from atmorep_core.jobs.product_job import ProductJob
    from atmorep_core.product_outputs import OutputOptions

    outputs = OutputOptions(
        formats=tuple(f.strip() for f in formats.split(",") if f.strip()),
        plot_fields=tuple(plot),
        plot_steps=tuple(plot_steps) or None,
    )
    return ProductJob(
        checkpoint=checkpoint, out=out_dir, store=store, grib_inputs=tuple(inputs),
        statistics_store=stats_store, outputs=outputs, device=device, force=force,
        allow_unfamiliar=allow_unfamiliar, allow_implausible=allow_implausible,
    )  # fmt: skip
