"""`atmorep evaluate PRODUCT... --truth STORE_OR_GRIB`: how good products are, beside baselines."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from pathlib import Path

import typer

from atmorep_cli.console import err, out
from atmorep_cli.options import TIME_FORMS, parse_hours, parse_time, resolve_patterns
from atmorep_cli.runlog import run_log
from atmorep_cli.tables import score_table
from atmorep_core.errors import ConfigError


def command(
    products: list[str] = typer.Argument(
        ..., help="Product files (NetCDF or GRIB2) or globs.", callback=resolve_patterns
    ),
    truth: list[Path] = typer.Option(
        ..., help="A store, or GRIB files (repeatable).", resolve_path=True
    ),
    out_dir: Path | None = typer.Option(
        None,
        "--out",
        help="Write scores.json, scores.csv and plots/ into this folder.",
        resolve_path=True,
    ),
    climatology: str | None = typer.Option(
        None,
        help=f"Window FIRST/LAST (UTC), each {TIME_FORMS}; default: the training window, else "
        "before the inits.",
    ),
    map_lead: list[str] = typer.Option([], help="Leads of the error maps, e.g. 6h; default: last."),
    as_json: bool = typer.Option(False, "--json", help="Print the scores as JSON."),
) -> None:
    """Score products against the truth, persistence and climatology per field, level and lead."""
    from atmorep_core.evaluation.job import EvaluateJob, run_evaluation_job

    job = EvaluateJob(
        products=tuple(products),
        truth=tuple(truth),
        out=out_dir,
        climatology=None if climatology is None else _window(climatology),
        map_leads=tuple(parse_hours(lead, "--map-lead") for lead in map_lead) or None,
    )
    logging: AbstractContextManager[object] = (
        nullcontext() if out_dir is None else run_log(out_dir / "atmorep.log")
    )
    with logging:
        result = run_evaluation_job(job)
    for note in result["notes"]:
        err.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    if as_json:
        out.print_json(json.dumps(result))
    else:
        out.print(score_table(result["scores"]))


def _window(text: str) -> tuple[datetime, datetime]:
    first, _, last = text.partition("/")
    if not last:
        raise ConfigError(
            f"--climatology {text!r}: expected FIRST/LAST, e.g. 2019-03-01/2019-03-19T23"
        )
    return parse_time(first, "--climatology"), parse_time(last, "--climatology")
