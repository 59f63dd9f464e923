"""`atmorep import-atmorep MODEL_DIR --run-dir RUN --store STORE`: a published AtmoRep model as
an ordinary run folder for every product (`jobs.import_published`)."""

from __future__ import annotations

from pathlib import Path

import typer

from atmorep_cli.console import err, out


def command(
    model_dir: Path = typer.Argument(
        ..., help="A published model folder id<ID>/ (model_id<ID>.json, AtmoRep_id<ID>.mod).",
        resolve_path=True,
    ),
    run_dir: Path = typer.Option(
        ..., "--run-dir", help="The run folder to create (must not hold files).",
        resolve_path=True,
    ),
    store: Path = typer.Option(
        ..., "--store", help="A store of the model's fields and levels: its statistics normalise.",
        resolve_path=True,
    ),
    original: Path | None = typer.Option(
        None, "--normalisation", resolve_path=True,
        help="The original's data file (zarr with normalization/) the model was trained with: "
        "its statistics per year and month normalise (default: the store's own).",
    ),
) -> None:  # fmt: skip
    """Import a published AtmoRep model (weights read as tensors only, never unpickled code)."""
    from atmorep_core.jobs.import_published import import_published

    imported = import_published(model_dir, run_dir, store, original)
    err.print(
        f"normalisation: the store's own statistics ({store}), not the original's"
        if imported.statistics is None
        else f"normalisation: the original's statistics per year and month ({original}), in "
        f"{imported.statistics} (products: input with --store or --input)",
        highlight=False, soft_wrap=True,
    )  # fmt: skip
    out.print(
        f"[green]imported[/] AtmoRep {imported.model_id} ({imported.parameters} parameters) "
        f"into {run_dir}"
    )
