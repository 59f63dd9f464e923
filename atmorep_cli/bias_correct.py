"""`atmorep bias-correct INPUT.grib --checkpoint RUN -o OUT.grib2`: correct new model output with a
model trained against observations (a recipe with `data.target`)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import typer

from atmorep_cli import corrections as file_option
from atmorep_cli import products as option
from atmorep_cli.corrections import checked_fields
from atmorep_cli.reports import report_bias_correction
from atmorep_cli.shell import run_product_command


def command(
    source: Path = typer.Argument(
        ..., help="Model output to correct, GRIB1/GRIB2 (any grid).", resolve_path=True
    ),
    checkpoint: Path | None = file_option.checkpoint_or_env(
        "Run folder or checkpoint trained with a target."
    ),
    output: Path | None = file_option.corrected_file("NAME.bias-corrected.grib2"),
    fields: str | None = file_option.corrected_fields("t2m"),
    obs: Path | None = typer.Option(
        None,
        help="Observation store: score raw, model and both baselines against it.",
        resolve_path=True,
    ),
    store: Path | None = file_option.GRID_STORE,
    stats_store: Path | None = option.STATS_STORE,
    batch: int = option.BATCH,
    device: str = option.DEVICE,
    force: bool = file_option.FILE_FORCE,
    allow_unfamiliar: bool = option.ALLOW_UNFAMILIAR,
    allow_implausible: bool = option.ALLOW_IMPLAUSIBLE,
    log: Path | None = file_option.FILE_LOG,
    as_json: bool = option.AS_JSON,
) -> None:
    """Bias-correct model output with a model fine-tuned against observations; write the
    corrected field and its ensemble spread (NAME.spread.grib2) on the input's grid."""
    from atmorep_core.jobs.bias_correct_job import BiasCorrectJob, run_bias_correct_job

    target = output or Path(f"{source.stem}.bias-corrected.grib2")
    checkpoint, names = checked_fields(checkpoint, fields)
    job = BiasCorrectJob(
        checkpoint=checkpoint, out=target.parent, store=store, statistics_store=stats_store,
        device=device, force=force, allow_unfamiliar=allow_unfamiliar, source=source,
        name=target.name, batch_size=batch, allow_implausible=allow_implausible,
        fields=names, obs=obs,
    )  # fmt: skip
    run = partial(run_bias_correct_job, job)
    report = partial(report_bias_correction, target)
    run_product_command("bias-correct", target.parent, log, as_json, run, report)
