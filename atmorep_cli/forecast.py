"""`atmorep forecast --init TIME --checkpoint RUN`: global or regional forecast products."""

from __future__ import annotations

from pathlib import Path

import typer

from atmorep_cli import products as option
from atmorep_cli.options import TIME_FORMS, parse_area, parse_hours, parse_time
from atmorep_cli.products import Manifest, Progress, output_options, run_product_command


def command(
    init: str = typer.Option(..., help=f"Last input time (UTC), {TIME_FORMS}."),
    checkpoint: Path = option.CHECKPOINT,
    lead: str = typer.Option("24h", help="Forecast length, e.g. 6h, 24h, 2d."),
    out_dir: Path = typer.Option(
        Path("forecasts"), "--out", help="Output folder.", resolve_path=True
    ),
    store: Path | None = option.STORE,
    inputs: list[Path] = option.INPUTS,
    stats_store: Path | None = option.STATS_STORE,
    members: int = option.MEMBERS,
    seed: int = option.SEED,
    area: str | None = option.AREA,
    every: str | None = typer.Option(None, help="Output interval, e.g. 6h; default: every step."),
    time_tokens: int | None = typer.Option(None, help="Time tokens per iteration (as trained)."),
    formats: str = option.FORMATS,
    plot: list[str] = option.PLOT,
    plot_lead: list[str] = typer.Option([], help="Leads to map, e.g. 6h; default: the last."),
    batch: int = option.BATCH,
    device: str = option.DEVICE,
    force: bool = option.FORCE,
    allow_unfamiliar: bool = option.ALLOW_UNFAMILIAR,
    log: Path | None = option.LOG,
    as_json: bool = option.AS_JSON,
) -> None:
    """Forecast from a store or GRIB input; write GRIB2, NetCDF and maps, safely for cron.

    Options are checked before any work; a lead or ensemble too large for this
    machine's memory is refused with the estimate.
    """
    from atmorep_core.jobs.forecast_job import ForecastJob, run_forecast_job
    from atmorep_core.jobs.request_checks import check_product
    from atmorep_core.products.forecast import ForecastRequest

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
    outputs = output_options(formats, plot, [parse_hours(p, "--plot-lead") for p in plot_lead])
    settings = (checkpoint, out_dir, store, tuple(inputs), stats_store, outputs, device, force)
    job = ForecastJob(*settings, allow_unfamiliar=allow_unfamiliar, request=request)
    check_product(job, request)

    def run(progress: Progress) -> Manifest:
        return run_forecast_job(job, progress)

    run_product_command("forecast", out_dir, log, as_json, run)
