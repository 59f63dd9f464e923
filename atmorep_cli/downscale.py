"""`atmorep downscale --start T --end T --checkpoint RUN --input COARSE.grib [--to GRID]`."""

from __future__ import annotations

from pathlib import Path

import typer

from atmorep_cli import products as option
from atmorep_cli.options import hours_after, parse_time
from atmorep_cli.products import Manifest, Progress, output_options, run_product_command


def command(
    start: str = typer.Option(..., help="First output time (UTC), e.g. 2019-03-20T00."),
    end: str = typer.Option(..., help="Last output time (UTC), e.g. 2019-03-24T23."),
    checkpoint: Path = option.CHECKPOINT,
    out_dir: Path = typer.Option(Path("downscaled"), "--out", help="Output folder."),
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
    plot_time: list[str] = typer.Option([], help="Times to map (UTC); default: the last."),
    batch: int = option.BATCH,
    device: str = option.DEVICE,
    force: bool = option.FORCE,
    log: Path | None = option.LOG,
    as_json: bool = option.AS_JSON,
) -> None:
    """The fine field from coarse input (ERA5 or IFS GRIB, or a store), with a checkpoint trained
    with the downscaling strategy; on its grid or regridded onto --to. GRIB2, NetCDF and maps,
    safely for cron.

    Exit codes: 2 bad option, 3 bad GRIB or grid, 4 no store, 5 folder locked, 6 input missing.
    """
    from atmorep_core.inference.downscale import DownscaleRequest
    from atmorep_core.inference.downscale_job import DownscaleJob, run_downscale_job

    def job(progress: Progress) -> Manifest:
        first = parse_time(start, "--start")
        request = DownscaleRequest(
            start=first, end=parse_time(end, "--end"), members=members, seed=seed, target=to,
            batch_size=batch,
        )  # fmt: skip
        leads = [hours_after(first, t, "--plot-time") for t in plot_time]
        outputs = output_options(formats, plot, leads)
        settings = (checkpoint, out_dir, store, tuple(inputs), stats_store, outputs, device, force)
        return run_downscale_job(DownscaleJob(*settings, request=request), progress)

    run_product_command("downscaling", out_dir, log, as_json, job)
