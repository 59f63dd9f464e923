"""`atmorep downscale --start T --end T --checkpoint RUN --input COARSE.grib [--to GRID]`."""

from __future__ import annotations

from pathlib import Path

import typer

from atmorep_cli import products as option
from atmorep_cli.options import TIME_FORMS, hours_after, parse_time
from atmorep_cli.products import product_job
from atmorep_cli.shell import run_folder_product


def command(
    start: str = typer.Option(..., help=f"First output time (UTC), {TIME_FORMS}."),
    end: str = typer.Option(..., help="Last output time (UTC), as --start."),
    checkpoint: Path = option.CHECKPOINT,
    out_dir: Path = typer.Option(
        Path("downscaled"), "--out", help="Output folder.", resolve_path=True
    ),
    store: Path | None = option.STORE,
    inputs: list[Path] = option.INPUTS,
    stats_store: Path | None = option.STATS_STORE,
    to: str | None = typer.Option(
        None,
        "--to",
        help="Target grid: a name in recipes/grids.yaml (e.g. cosmo-rea6) or a GRIB "
        "file whose grid to take; default: the checkpoint's own grid.",
    ),
    members: int = option.MEMBERS,
    seed: int = option.SEED,
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
    """The fine field from coarse input (ERA5 or IFS GRIB, or a store), with a checkpoint trained
    with the downscaling strategy; on its grid or regridded onto --to. GRIB2, NetCDF and maps,
    safely for cron.

    Options are checked before any work; a span or ensemble too large for this
    machine's memory is refused with the estimate.
    """
    from atmorep_core.products.downscale import DownscaleRequest

    first = parse_time(start, "--start")
    request = DownscaleRequest(
        start=first, end=parse_time(end, "--end"), members=members, seed=seed,
        target=_target(to), batch_size=batch,
    )  # fmt: skip
    job = product_job(
        checkpoint=checkpoint, out_dir=out_dir, store=store, inputs=inputs,
        stats_store=stats_store, formats=formats, plot=plot,
        plot_steps=[hours_after(first, t, "--plot-time") for t in plot_time], device=device,
        force=force, allow_unfamiliar=allow_unfamiliar, allow_implausible=allow_implausible,
    )  # fmt: skip
    run_folder_product(job, request, log, as_json)


def _target(to: str | None) -> str | None:
    """--to: a grid name as it is, a GRIB file resolved (names have no suffix, as in
    `rotated_grid.target_grid`)."""
    path = None if to is None else Path(to).expanduser()
    return str(path.resolve()) if path and (path.suffix or path.exists()) else to
