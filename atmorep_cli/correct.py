"""`atmorep correct --ifs FILE.grib --checkpoint RUN -o OUT.grib2`: IFS model correction."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import typer

from atmorep_cli import corrections as file_option
from atmorep_cli import products as option
from atmorep_cli.corrections import checked_fields
from atmorep_cli.reports import report_correction
from atmorep_cli.shell import run_product_command


def command(
    ifs: Path = typer.Option(
        ..., help="IFS GRIB1/GRIB2 file to correct (any grid, levels).", resolve_path=True
    ),
    checkpoint: Path | None = file_option.checkpoint_or_env("Run folder or checkpoint."),
    output: Path | None = file_option.corrected_file("NAME.corrected.grib2"),
    mode: str = typer.Option(
        "denoise",
        help="denoise (each step as it is) or forecast (each step from the steps before).",
    ),
    fields: str | None = file_option.corrected_fields("t,u"),
    store: Path | None = file_option.GRID_STORE,
    stats_store: Path | None = option.STATS_STORE,
    truth: Path | None = typer.Option(
        None,
        help="Reference store: score the input and the correction against it.",
        resolve_path=True,
    ),
    batch: int = option.BATCH,
    device: str = option.DEVICE,
    force: bool = file_option.FILE_FORCE,
    allow_unfamiliar: bool = option.ALLOW_UNFAMILIAR,
    allow_implausible: bool = option.ALLOW_IMPLAUSIBLE,
    log: Path | None = file_option.FILE_LOG,
    as_json: bool = option.AS_JSON,
) -> None:
    """Correct an IFS forecast with a model trained on reanalysis; write it on the input's grid."""
    from atmorep_core.jobs.correct_job import CorrectJob, run_correct_job
    from atmorep_core.products.correct import CorrectRequest

    target = output or Path(f"{ifs.stem}.corrected.grib2")
    # Options are checked before any work: --fields against the checkpoint, --mode here.
    checkpoint, names = checked_fields(checkpoint, fields)
    request = CorrectRequest(
        mode=mode,  # type: ignore[arg-type]  # checked by CorrectRequest
        fields=names,
        batch_size=batch,
        allow_implausible=allow_implausible,
    )
    job = CorrectJob(
        checkpoint=checkpoint, out=target.parent, store=store, statistics_store=stats_store,
        device=device, force=force, allow_unfamiliar=allow_unfamiliar,
        allow_implausible=allow_implausible, ifs=ifs,
        name=target.name, request=request, truth=truth,
    )  # fmt: skip
    run = partial(run_correct_job, job)
    report = partial(report_correction, target)
    run_product_command("correct", target.parent, log, as_json, run, report)
