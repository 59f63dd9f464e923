"""`atmorep forecast --init TIME --checkpoint RUN`: global or regional forecast products."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from atmorep_cli.console import out
from atmorep_cli.options import parse_area, parse_hours, parse_time
from atmorep_cli.progress import progress_bar
from atmorep_cli.runlog import run_log


def command(
    init: str = typer.Option(..., help="Last input time (UTC), e.g. 2020-01-10T12."),
    checkpoint: Path = typer.Option(..., help="Run folder (its latest checkpoint) or checkpoint."),
    lead: str = typer.Option("24h", help="Forecast length, e.g. 6h, 24h, 2d."),
    out_dir: Path = typer.Option(Path("forecasts"), "--out", help="Output folder."),
    store: Path | None = typer.Option(None, help="Input store; default: the training store."),
    inputs: list[Path] = typer.Option([], "--input", help="GRIB input files (repeatable)."),
    stats_store: Path | None = typer.Option(
        None, help="Store of local normalisation statistics; default: the training store."
    ),
    members: int = typer.Option(1, help="Ensemble members (1: the ensemble-mean forecast)."),
    seed: int = typer.Option(0, help="Seed of the members' draws."),
    area: str | None = typer.Option(None, help="N/W/S/E in degrees; default: the whole grid."),
    every: str | None = typer.Option(None, help="Output interval, e.g. 6h; default: every step."),
    time_tokens: int | None = typer.Option(None, help="Time tokens per iteration (as trained)."),
    formats: str = typer.Option("grib,netcdf", "--format", help="grib, netcdf or both."),
    plot: list[str] = typer.Option([], help="Write maps of this field (repeatable)."),
    plot_lead: list[str] = typer.Option([], help="Leads to map, e.g. 6h; default: the last."),
    batch: int = typer.Option(16, help="Tiles per model call."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    force: bool = typer.Option(False, help="Recompute even if the outputs are up to date."),
    log: Path | None = typer.Option(None, help="Log file; default: OUT/atmorep.log."),
    as_json: bool = typer.Option(False, "--json", help="Print the run's manifest as JSON."),
) -> None:
    """Forecast from a store or GRIB input; write GRIB2, NetCDF and maps, safely for cron."""
    from atmorep_core.inference.forecast import ForecastRequest
    from atmorep_core.inference.forecast_job import ForecastJob, run_forecast_job
    from atmorep_core.io.product_outputs import OutputOptions

    with run_log(log or out_dir / "atmorep.log") as write_log:
        request = ForecastRequest(
            init=parse_time(init, "--init"),
            lead_hours=parse_hours(lead, "--lead"),
            members=members,
            seed=seed,
            area=None if area is None else parse_area(area),
            time_tokens=time_tokens,
            every_hours=None if every is None else parse_hours(every, "--every"),
            batch_size=batch,
        )
        outputs = OutputOptions(
            formats=tuple(f.strip() for f in formats.split(",") if f.strip()),
            plot_fields=tuple(plot),
            plot_steps=tuple(parse_hours(p, "--plot-lead") for p in plot_lead) or None,
        )
        job = ForecastJob(
            checkpoint, out_dir, request, store, tuple(inputs), stats_store, outputs, device, force
        )
        with progress_bar("forecast", quiet=as_json) as progress:
            manifest = run_forecast_job(job, progress)
        write_log(("up to date " if manifest["skipped"] else "done ") + json.dumps(manifest))
    if as_json:
        out.print_json(json.dumps(manifest))
    elif manifest["skipped"]:
        out.print(
            f"[green]up to date[/]: {out_dir} already holds this forecast (--force redoes it)"
        )
    else:
        files = ", ".join(manifest["outputs"])
        out.print(f"[green]forecast[/] {manifest['seconds']} s: {files} in {out_dir}")
