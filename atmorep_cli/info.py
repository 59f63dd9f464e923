"""`atmorep info STORE`: what a training store holds."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from atmorep_cli.console import out
from atmorep_core.io.store import Store
from atmorep_core.io.store_summary import StoreSummary, summarize


def command(
    store: Path = typer.Argument(..., help="A store made by 'atmorep prepare'.", resolve_path=True),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Fields, levels, time range, grid, statistics and size of a store: what is committed, also
    while another run ingests into it ("updating" in the JSON). Exit 4 if it is no store or its
    metadata is missing or corrupt."""
    opened = Store.open(store)
    summary = summarize(opened)
    extent = opened.grid.geographic_extent()
    if as_json:
        extra = {} if extent is None else {"geographic_extent": extent}
        out.print_json(json.dumps(summary.to_dict() | extra))
    else:
        _render(summary, extent)


def _render(summary: StoreSummary, extent: dict[str, float] | None) -> None:
    size_mb = summary.size_bytes / 2**20
    out.print(f"[bold]{summary.path}[/]  format {summary.format_version}, {size_mb:.1f} MiB, "
              f"{summary.sources} source file(s)")  # fmt: skip
    out.print(f"grid: {summary.grid_description}")
    if summary.updating:
        out.print(
            "[yellow]update in progress:[/] another run is ingesting into this store "
            "(or was killed and awaits the next prepare); shown is what is committed"
        )
    if extent is not None:
        out.print(
            f"geographic extent: lat {extent['south']:.3f}..{extent['north']:.3f}, "
            f"lon {extent['west']:.3f}..{extent['east']:.3f}"
        )
    table = Table(title="fields")
    for column in (
        "field",
        "param",
        "units",
        "levels",
        "times",
        "first",
        "last",
        "step h",
        "months",
        "missing points",
    ):
        table.add_column(column)
    stats = Table(title="global statistics per level")
    for column in ("field", "level", "mean", "std"):
        stats.add_column(column, justify="right")
    for f in summary.fields:
        per = "" if f.accumulation_hours is None else f" per {f.accumulation_hours:g} h"
        table.add_row(
            f.name, f"{f.short_name} ({f.param_id})", f.units + per,
            f"{f.level_type} " + ",".join(str(s.level) for s in f.levels), str(f.times),
            f.first_time or "-", f.last_time or "-",
            "-" if f.time_step_hours is None else f"{f.time_step_hours:g}", str(len(f.months)),
            str(f.missing_points),
        )  # fmt: skip
        for s in f.levels:
            stats.add_row(f.name, str(s.level), f"{s.mean:.6g}", f"{s.std:.6g}")
    out.print(table)
    out.print(stats)
