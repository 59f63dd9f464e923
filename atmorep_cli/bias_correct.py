"""`atmorep bias-correct INPUT.grib --checkpoint RUN -o OUT.grib2`: correct new model output with a
model trained against observations (a recipe with `data.target`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from atmorep_cli.console import out
from atmorep_cli.products import (
    ALLOW_IMPLAUSIBLE,
    ALLOW_UNFAMILIAR,
    AS_JSON,
    BATCH,
    DEVICE,
    STATS_STORE,
    warn_unfamiliar,
)
from atmorep_cli.progress import progress_bar
from atmorep_cli.runlog import run_log
from atmorep_core.errors import ConfigError


def command(
    source: Path = typer.Argument(
        ..., help="Model output to correct, GRIB1/GRIB2 (any grid).", resolve_path=True
    ),
    checkpoint: Path | None = typer.Option(
        None,
        envvar="ATMOREP_CHECKPOINT",
        help="Run folder or checkpoint trained with a target.",
        resolve_path=True,
    ),
    output: Path | None = typer.Option(
        None,
        "-o",
        "--output",
        help="Corrected GRIB file; default: NAME.bias-corrected.grib2 here.",
        resolve_path=True,
    ),
    fields: str | None = typer.Option(
        None, help="Fields to write corrected, e.g. t2m; default: all of the checkpoint's."
    ),
    obs: Path | None = typer.Option(
        None,
        help="Observation store: score raw, model and both baselines against it.",
        resolve_path=True,
    ),
    store: Path | None = typer.Option(
        None,
        help="Store with the checkpoint's grid; default: its training store.",
        resolve_path=True,
    ),
    stats_store: Path | None = STATS_STORE,
    batch: int = BATCH,
    device: str = DEVICE,
    force: bool = typer.Option(False, help="Recompute even if the output is up to date."),
    allow_unfamiliar: bool = ALLOW_UNFAMILIAR,
    allow_implausible: bool = ALLOW_IMPLAUSIBLE,
    log: Path | None = typer.Option(
        None, help="Log file; default: atmorep.log beside the output.", resolve_path=True
    ),
    as_json: bool = AS_JSON,
) -> None:
    """Bias-correct model output with a model fine-tuned against observations; write the
    corrected field and its ensemble spread (NAME.spread.grib2) on the input's grid."""
    from atmorep_core.jobs.bias_correct_job import BiasCorrectJob, run_bias_correct_job
    from atmorep_core.jobs.request_checks import check_fields

    target = output or Path(f"{source.stem}.bias-corrected.grib2")
    if checkpoint is None:
        raise ConfigError("--checkpoint: give a run folder (or set ATMOREP_CHECKPOINT)")
    check_fields(checkpoint, [f.strip() for f in (fields or "").split(",") if f.strip()])
    with run_log(log or target.parent / "atmorep.log") as write_log:
        job = BiasCorrectJob(
            checkpoint=checkpoint, out=target.parent, store=store, statistics_store=stats_store,
            device=device, force=force, allow_unfamiliar=allow_unfamiliar, source=source,
            name=target.name, batch_size=batch, allow_implausible=allow_implausible,
            fields=tuple(f.strip() for f in (fields or "").split(",") if f.strip()), obs=obs,
        )  # fmt: skip
        with progress_bar("bias-correct", quiet=as_json) as progress:
            manifest = run_bias_correct_job(job, progress)
        warn_unfamiliar(manifest, write_log)
        write_log(("up to date " if manifest["skipped"] else "done ") + json.dumps(manifest))
    _report(manifest, target, as_json)


def _report(manifest: dict[str, Any], target: Path, as_json: bool) -> None:
    from atmorep_core.evaluation.bias_score import describe

    if as_json:
        out.print_json(json.dumps(manifest))
        return
    if manifest["skipped"]:
        out.print(f"[green]up to date[/]: {target} holds this correction (--force redoes it)")
    else:
        out.print(
            f"[green]bias-corrected[/] {manifest['corrected_messages']} of {manifest['messages']} "
            f"messages in {manifest['seconds']} s: {target} (spread beside it)"
        )
    for line in describe(manifest.get("score", {})):
        out.print(line)
