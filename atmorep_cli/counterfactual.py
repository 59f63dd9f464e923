"""`atmorep counterfactual --init T --checkpoint RUN --shift-year 35`: a forecast or a
reconstruction asked again with its alpha changed; the factual run and the difference beside it."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from atmorep_cli import products as option
from atmorep_cli.options import (
    TIME_FORMS,
    parse_area,
    parse_assignments,
    parse_hours,
    parse_time,
)
from atmorep_cli.products import Manifest, Progress, output_options, run_product_command

if TYPE_CHECKING:
    from atmorep_core.engine.alpha import AlphaChange
    from atmorep_core.products.counterfactual import Question


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
    log: Path | None = option.LOG,
    as_json: bool = option.AS_JSON,
) -> None:
    """Rerun a forecast or reconstruction with alpha changed (same seed, same members); write
    the counterfactual, the factual run and their difference, safely for cron.

    Options are checked before any work; a lead or ensemble too large for this
    machine's memory (both runs and their difference) is refused with the estimate.
    """
    from atmorep_core.jobs.counterfactual_job import CounterfactualJob, run_counterfactual_job
    from atmorep_core.jobs.request_checks import check_product

    question = _question(
        parse_time(init, "--init"), parse_hours(lead, "--lead"), reconstruct, members, seed,
        None if area is None else parse_area(area), batch,
    )  # fmt: skip
    change = _change(set_alpha, shift_alpha, shift_year)
    outputs = output_options(formats, plot, [parse_hours(p, "--plot-lead") for p in plot_lead])
    settings = (checkpoint, out_dir, store, tuple(inputs), stats_store, outputs, device, force)
    job = CounterfactualJob(
        *settings, allow_unfamiliar=allow_unfamiliar, question=question, change=change
    )
    check_product(job, question, runs=3)  # the factual and changed runs and their difference

    def run(progress: Progress) -> Manifest:
        return run_counterfactual_job(job, progress)

    run_product_command("counterfactual", out_dir, log, as_json, run)


def _question(
    init: datetime,
    hours: int,
    reconstruct: bool,
    members: int,
    seed: int,
    area: tuple[float, float, float, float] | None,
    batch: int,
) -> Question:
    from atmorep_core.products.forecast import ForecastRequest
    from atmorep_core.products.interpolate import InterpolationRequest

    if reconstruct:
        end = init + timedelta(hours=hours)
        return InterpolationRequest(
            init, end, members=members, seed=seed, area=area, batch_size=batch, reconstruct=True
        )
    return ForecastRequest(init, hours, members, seed, area, batch_size=batch)


def _change(sets: list[str], shifts: list[str], shift_year: float | None) -> AlphaChange:
    from atmorep_core.engine.alpha import AlphaChange

    shift = parse_assignments(shifts, "--shift")
    if shift_year is not None:
        shift["year"] = shift.get("year", 0.0) + shift_year
    return AlphaChange(set=parse_assignments(sets, "--set"), shift=shift)
