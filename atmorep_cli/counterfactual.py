"""`atmorep counterfactual --init T --checkpoint RUN --shift-year 35`: a forecast or a
reconstruction asked again with its alpha changed; the factual run and the difference beside it."""

from __future__ import annotations

from pathlib import Path

import typer

from atmorep_cli import products as option
from atmorep_cli.options import (
    TIME_FORMS,
    parse_area,
    parse_assignments,
    parse_hours,
    parse_time,
)
from atmorep_cli.products import product_job
from atmorep_cli.shell import run_folder_product


def command(
    init: str = typer.Option(
        ..., help=f"Forecast: the last input time (UTC); --reconstruct: the first; {TIME_FORMS}."
    ),
    checkpoint: Path = option.CHECKPOINT,
    lead: str = typer.Option("24h", help="Forecast length, or the hours reconstructed after INIT."),
    reconstruct: bool = typer.Option(False, help="Reconstruct INIT .. INIT+LEAD, not forecast."),
    set_alpha: list[str] = typer.Option(
        [], "--set", help="Set an alpha entry, e.g. year=2050, day_of_year=200 (repeatable)."
    ),
    shift_alpha: list[str] = typer.Option(
        [], "--shift", help="Move an alpha entry, e.g. hour=6 (repeatable)."
    ),
    shift_year: float | None = typer.Option(None, help="Move the year, e.g. 35."),
    out_dir: Path = typer.Option(
        Path("counterfactuals"), "--out", help="Output folder.", resolve_path=True
    ),
    store: Path | None = option.STORE,
    inputs: list[Path] = option.INPUTS,
    stats_store: Path | None = option.STATS_STORE,
    members: int = option.MEMBERS,
    seed: int = option.SEED,
    area: str | None = option.AREA,
    formats: str = option.FORMATS,
    plot: list[str] = typer.Option([], help="Write maps of the difference of this field."),
    plot_lead: list[str] = typer.Option([], help="Leads to map, e.g. 6h; default: the last."),
    batch: int = option.BATCH,
    device: str = option.DEVICE,
    force: bool = option.FORCE,
    allow_unfamiliar: bool = option.ALLOW_UNFAMILIAR,
    allow_implausible: bool = option.ALLOW_IMPLAUSIBLE,
    log: Path | None = option.LOG,
    as_json: bool = option.AS_JSON,
) -> None:
    """Rerun a forecast or reconstruction with alpha changed (same seed, same members); write
    the counterfactual, the factual run and their difference, safely for cron.

    Options are checked before any work; a lead or ensemble too large for this
    machine's memory (both runs and their difference) is refused with the estimate.
    """
    from atmorep_core.jobs.product_kinds import counterfactual_request

    request = counterfactual_request(
        init=parse_time(init, "--init"), hours=parse_hours(lead, "--lead"),
        reconstruct=reconstruct, members=members, seed=seed, area=parse_area(area),
        batch_size=batch, shift_alpha=parse_assignments(shift_alpha, "--shift"),
        set_alpha=parse_assignments(set_alpha, "--set"), shift_year=shift_year,
    )  # fmt: skip
    job = product_job(
        checkpoint=checkpoint, out_dir=out_dir, store=store, inputs=inputs,
        stats_store=stats_store, formats=formats, plot=plot,
        plot_steps=[parse_hours(p, "--plot-lead") for p in plot_lead], device=device,
        force=force, allow_unfamiliar=allow_unfamiliar, allow_implausible=allow_implausible,
    )  # fmt: skip
    run_folder_product(job, request, log, as_json)
