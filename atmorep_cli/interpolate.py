"""`atmorep interpolate --start T --end T --checkpoint RUN`: fill missing or coarse time steps."""

from __future__ import annotations

from pathlib import Path

import typer

from atmorep_cli import products as option
from atmorep_cli.options import hours_after, parse_area, parse_hours, parse_time
from atmorep_cli.products import Manifest, Progress, output_options, run_product_command


def command(
    start: str = typer.Option(..., help="First output time (UTC), e.g. 2019-03-20T00."),
    end: str = typer.Option(..., help="Last output time (UTC), e.g. 2019-03-24T21."),
    checkpoint: Path = option.CHECKPOINT,
    out_dir: Path = typer.Option(Path("interpolations"), "--out", help="Output folder."),
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
    plot_time: list[str] = typer.Option([], help="Times to map (UTC); default: the last."),
    batch: int = option.BATCH,
    device: str = option.DEVICE,
    force: bool = option.FORCE,
    log: Path | None = option.LOG,
    as_json: bool = option.AS_JSON,
) -> None:
    """Fill missing hours or days, or upsample 3- or 6-hourly input to the model's step;
    given steps are kept as they are. GRIB2, NetCDF and maps, safely for cron.

    Exit codes: 2 bad option, 3 bad GRIB, 4 no store, 5 folder locked, 6 input or gap too wide.
    """
    from atmorep_core.inference.interpolate import InterpolationRequest
    from atmorep_core.inference.interpolate_job import InterpolationJob, run_interpolation_job

    def job(progress: Progress) -> Manifest:
        first = parse_time(start, "--start")
        request = InterpolationRequest(
            start=first,
            end=parse_time(end, "--end"),
            input_every_hours=None
            if input_every is None
            else parse_hours(input_every, "--input-every"),
            members=members,
            seed=seed,
            area=None if area is None else parse_area(area),
            batch_size=batch,
        )
        leads = [hours_after(first, t, "--plot-time") for t in plot_time]
        outputs = output_options(formats, plot, leads)
        settings = (checkpoint, out_dir, store, tuple(inputs), stats_store, outputs, device, force)
        return run_interpolation_job(InterpolationJob(*settings, request=request), progress)

    run_product_command("interpolation", out_dir, log, as_json, job)
