"""`atmorep correct --ifs FILE.grib --checkpoint RUN -o OUT.grib2`: IFS model correction."""

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
    ifs: Path = typer.Option(
        ..., help="IFS GRIB1/GRIB2 file to correct (any grid, levels).", resolve_path=True
    ),
    checkpoint: Path | None = typer.Option(
        None, envvar="ATMOREP_CHECKPOINT", help="Run folder or checkpoint.", resolve_path=True
    ),
    output: Path | None = typer.Option(
        None,
        "-o",
        "--output",
        help="Corrected GRIB file; default: NAME.corrected.grib2 here.",
        resolve_path=True,
    ),
    mode: str = typer.Option(
        "denoise",
        help="denoise (each step as it is) or forecast (each step from the steps before).",
    ),
    fields: str | None = typer.Option(
        None, help="Fields to write corrected, e.g. t,u; default: all of the checkpoint's."
    ),
    store: Path | None = typer.Option(
        None,
        help="Store with the checkpoint's grid; default: its training store.",
        resolve_path=True,
    ),
    stats_store: Path | None = STATS_STORE,
    truth: Path | None = typer.Option(
        None,
        help="Reference store: score the input and the correction against it.",
        resolve_path=True,
    ),
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
    """Correct an IFS forecast with a model trained on reanalysis; write it on the input's grid."""
    from atmorep_core.jobs.correct_job import CorrectJob, run_correct_job
    from atmorep_core.jobs.request_checks import check_fields
    from atmorep_core.products.correct import CorrectRequest

    target = output or Path(f"{ifs.stem}.corrected.grib2")
    if checkpoint is None:
        raise ConfigError("--checkpoint: give a run folder (or set ATMOREP_CHECKPOINT)")
    # Options are checked before any work: --fields against the checkpoint, --mode here.
    check_fields(checkpoint, [f.strip() for f in (fields or "").split(",") if f.strip()])
    request = CorrectRequest(
        mode=mode,  # type: ignore[arg-type]  # checked by CorrectRequest
        fields=tuple(f.strip() for f in (fields or "").split(",") if f.strip()),
        batch_size=batch,
        allow_implausible=allow_implausible,
    )
    with run_log(log or target.parent / "atmorep.log") as write_log:
        job = CorrectJob(
            checkpoint=checkpoint, out=target.parent, store=store, statistics_store=stats_store,
            device=device, force=force, allow_unfamiliar=allow_unfamiliar, ifs=ifs,
            name=target.name, request=request, truth=truth,
        )  # fmt: skip
        with progress_bar("correct", quiet=as_json) as progress:
            manifest = run_correct_job(job, progress)
        warn_unfamiliar(manifest, write_log)
        write_log(("up to date " if manifest["skipped"] else "done ") + json.dumps(manifest))
    _report(manifest, target, as_json)


def _report(manifest: dict[str, Any], target: Path, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(manifest))
        return
    if manifest["skipped"]:
        out.print(
            f"[green]up to date[/]: {target} already holds this correction (--force redoes it)"
        )
    else:
        out.print(
            f"[green]corrected[/] {manifest['corrected_messages']} of {manifest['messages']} "
            f"messages in {manifest['seconds']} s: {target}"
        )
    if manifest["uncorrected_times"]:
        out.print(f"[yellow]passed through (no history)[/]: {manifest['uncorrected_times']}")
    for group, row in manifest.get("score", {}).items():
        if " " not in group:  # one line per field; levels and leads are in the JSON
            out.print(
                f"{group}: RMSE against the truth {row['rmse_raw']:.4g} raw, "
                f"{row['rmse_corrected']:.4g} corrected (ratio {row['ratio']:.3f})"
            )
