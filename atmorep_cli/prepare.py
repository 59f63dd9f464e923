"""`atmorep prepare GRIB... --store STORE.zarr`: ingest GRIB files into the training store."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import typer
from rich.table import Table

from atmorep_cli.console import out
from atmorep_cli.ingest_options import expand_patterns, ingest_options
from atmorep_cli.progress import progress_bar
from atmorep_core.data.prepare import prepare


def command(
    inputs: list[str] = typer.Argument(
        ..., help="GRIB files, plain or .bz2 (DWD's open data), or quoted glob patterns."
    ),
    store: Path = typer.Option(
        ..., "--store", "-s", help="The zarr store to create or extend.", resolve_path=True
    ),
    fields: str | None = typer.Option(
        None, help="Comma-separated fields to take (names, shortNames or paramIds); default all."
    ),
    levels: str | None = typer.Option(None, help="Comma-separated levels to keep, e.g. 96,137."),
    member: str | None = typer.Option(
        None, help="Ensemble member number to keep, or 'mean'; default the lowest number."
    ),
    resolution: float | None = typer.Option(
        None, help="Lat-lon spacing in degrees for a new store made from Gaussian-grid input."
    ),
    allow_implausible: bool = typer.Option(
        False,
        "--allow-implausible",
        help="Ingest values outside their field's physically plausible range (for experiments); "
        "by default such a file is refused (exit 3) naming the message, value and range.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON report instead of a table."),
) -> None:
    """Ingest ERA5 / IFS GRIB into a training store: incremental, resumable, all or nothing per
    file; readers see only committed files. Exit 3 for bad input (also implausible values), 4 for
    a store that does not match, 5 while another run writes it, 7 when the disk is full,
    read-only or not permitted (the store is left as it was)."""
    paths = expand_patterns(inputs)
    options = ingest_options(
        fields=fields, levels=levels, member=member, resolution=resolution,
        allow_implausible=allow_implausible,
    )  # fmt: skip
    with progress_bar("prepare", quiet=as_json) as progress:
        reports = prepare(paths, store, options, progress)
    if as_json:
        out.print_json(json.dumps([asdict(r) for r in reports]))
        return
    table = Table(title=f"prepare -> {store}")
    for column in ("file", "status", "fields", "first time", "last time", "messages", "s"):
        table.add_column(column)
    for r in reports:
        table.add_row(
            Path(r.path).name, r.status, ", ".join(r.fields), r.first_time or "",
            r.last_time or "", str(r.messages), f"{r.seconds:.1f}",
        )  # fmt: skip
    out.print(table)
