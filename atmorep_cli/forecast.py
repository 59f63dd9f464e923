"""`atmorep forecast --init TIME --checkpoint RUN`: global or regional forecast products."""

from __future__ import annotations

from pathlib import Path

import typer

from atmorep_cli import products as option
from atmorep_cli.options import TIME_FORMS, parse_area, parse_hours, parse_time
from atmorep_cli.products import product_job
from atmorep_cli.shell import run_folder_product


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
    allow_implausible: bool = option.ALLOW_IMPLAUSIBLE,
    log: Path | None = option.LOG,
    as_json: bool = option.AS_JSON,
) -> None:
    """Forecast from a store or GRIB input; write GRIB2, NetCDF and maps, safely for cron.

    Options are checked before any work; a lead or ensemble too large for this
    machine's memory is refused with the estimate.
    """
    from atmorep_core.products.forecast import ForecastRequest

    request = ForecastRequest(
        init=parse_time(init, "--init"),
        lead_hours=parse_hours(lead, "--lead"),
        members=members,
        seed=seed,
        area=parse_area(area),
        time_tokens=time_tokens,
        every_hours=None if every is None else parse_hours(every, "--every"),
        batch_size=batch,
    )
    job = product_job(
        checkpoint=checkpoint, out_dir=out_dir, store=store, inputs=inputs,
        stats_store=stats_store, formats=formats, plot=plot,
        plot_steps=[parse_hours(p, "--plot-lead") for p in plot_lead], device=device,
        force=force, allow_unfamiliar=allow_unfamiliar, allow_implausible=allow_implausible,
    )  # fmt: skip
    run_folder_product(job, request, log, as_json)
