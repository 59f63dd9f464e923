"""`atmorep interpolate --start T --end T --checkpoint RUN`: fill missing or coarse time steps."""

from __future__ import annotations

from pathlib import Path

import typer

from atmorep_cli import products as option
from atmorep_cli.options import TIME_FORMS, hours_after, parse_area, parse_hours, parse_time
from atmorep_cli.products import product_job
from atmorep_cli.shell import run_folder_product


def command(
    start: str = typer.Option(..., help=f"First output time (UTC), {TIME_FORMS}."),
    end: str = typer.Option(..., help="Last output time (UTC), as --start."),
    checkpoint: Path = option.CHECKPOINT,
    out_dir: Path = typer.Option(
        Path("interpolations"), "--out", help="Output folder.", resolve_path=True
    ),
    store: Path | None = option.STORE,
    inputs: list[Path] = option.INPUTS,
    stats_store: Path | None = option.STATS_STORE,
    input_every: str | None = typer.Option(
        None, help="Use only input times on this interval, e.g. 3h; default: every input time."
    ),
    members: int = option.MEMBERS,
    seed: int = option.SEED,
    area: str | None = option.AREA,
    formats: str = option.FORMATS,
    plot: list[str] = option.PLOT,
    plot_time: list[str] = typer.Option([], help="Times to map (UTC, as --start); default: last."),
    batch: int = option.BATCH,
    device: str = option.DEVICE,
    force: bool = option.FORCE,
    allow_unfamiliar: bool = option.ALLOW_UNFAMILIAR,
    allow_implausible: bool = option.ALLOW_IMPLAUSIBLE,
    log: Path | None = option.LOG,
    as_json: bool = option.AS_JSON,
) -> None:
    """Fill missing hours or days, or upsample 3- or 6-hourly input to the model's step;
    given steps are kept as they are. GRIB2, NetCDF and maps, safely for cron.

    Options are checked before any work; a span or ensemble too large for this
    machine's memory is refused with the estimate.
    """
    from atmorep_core.products.interpolate import InterpolationRequest

    first = parse_time(start, "--start")
    request = InterpolationRequest(
        start=first,
        end=parse_time(end, "--end"),
        input_every_hours=None
        if input_every is None
        else parse_hours(input_every, "--input-every"),
        members=members,
        seed=seed,
        area=parse_area(area),
        batch_size=batch,
    )
    job = product_job(
        checkpoint=checkpoint, out_dir=out_dir, store=store, inputs=inputs,
        stats_store=stats_store, formats=formats, plot=plot,
        plot_steps=[hours_after(first, t, "--plot-time") for t in plot_time], device=device,
        force=force, allow_unfamiliar=allow_unfamiliar, allow_implausible=allow_implausible,
    )  # fmt: skip
    run_folder_product(job, request, log, as_json)
