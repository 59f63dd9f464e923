"""`atmorep evaluate PRODUCT... --truth STORE_OR_GRIB`: how good products are, beside baselines."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from atmorep_cli.console import err, out
from atmorep_cli.options import TIME_FORMS, parse_hours, parse_time, resolve_patterns
from atmorep_cli.runlog import run_log
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
        out.print(_table(result["scores"]))


def _window(text: str) -> tuple[datetime, datetime]:
    first, _, last = text.partition("/")
    if not last:
        raise ConfigError(
            f"--climatology {text!r}: expected FIRST/LAST, e.g. 2019-03-01/2019-03-19T23"
        )
    return parse_time(first, "--climatology"), parse_time(last, "--climatology")


def _table(scores: list[dict[str, Any]]) -> Table:
    """A line per field, level, lead and source; the lowest RMSE and CRPS of a lead in bold."""
    table = Table(title="latitude-weighted; CRPS fair; SSR spread/skill, 1 = reliable")
    for column in ("field", "level", "lead", "source"):
        table.add_column(column, no_wrap=True)
    for column in ("RMSE", "CRPS", "bias", "ACC", "SSR"):
        table.add_column(column, justify="right")
    previous = None
    for row in scores:
        cell = (row["field"], row["level"], row["lead_h"])
        if previous is not None and cell != previous:
            table.add_section()
        same = [r for r in scores if (r["field"], r["level"], r["lead_h"]) == cell]
        table.add_row(
            *(str(v) for v in cell[:2]), f"{cell[2]} h", row["source"],
            *(_best(row, same, score) for score in ("rmse", "crps")),
            *(_number(row[score]) for score in ("bias", "acc", "spread_skill")),
        )  # fmt: skip
        previous = cell
    return table


def _best(row: dict[str, Any], same: list[dict[str, Any]], score: str) -> str:
    text = _number(row[score])
    return f"[bold]{text}[/]" if row[score] == min(r[score] for r in same) else text


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"
