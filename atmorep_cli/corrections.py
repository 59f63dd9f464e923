"""What `correct` and `bias-correct` share: one corrected GRIB file (not a folder of products)
beside its manifest and log, from a checkpoint that may come from the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from atmorep_core.errors import ConfigError

GRID_STORE = typer.Option(
    None, help="Store with the checkpoint's grid; default: its training store.", resolve_path=True
)
FILE_FORCE = typer.Option(False, help="Recompute even if the output is up to date.")
FILE_LOG = typer.Option(
    None, help="Log file; default: atmorep.log beside the output.", resolve_path=True
)


def checkpoint_or_env(description: str) -> Any:
    """--checkpoint, or ATMOREP_CHECKPOINT (a cron job's environment)."""
    return typer.Option(None, envvar="ATMOREP_CHECKPOINT", help=description, resolve_path=True)


def corrected_file(default: str) -> Any:
    """-o/--output: the corrected GRIB file."""
    help_text = f"Corrected GRIB file; default: {default} here."
    return typer.Option(None, "-o", "--output", help=help_text, resolve_path=True)


def corrected_fields(example: str) -> Any:
    """--fields: the fields to write corrected."""
    help_text = f"Fields to write corrected, e.g. {example}; default: all of the checkpoint's."
    return typer.Option(None, help=help_text)


def checked_fields(checkpoint: Path | None, fields: str | None) -> tuple[Path, tuple[str, ...]]:
    """The checkpoint (--checkpoint or ATMOREP_CHECKPOINT) and the --fields to correct, checked
    against it before any work."""
    from atmorep_core.jobs.request_checks import check_fields

    if checkpoint is None:
        raise ConfigError("--checkpoint: give a run folder (or set ATMOREP_CHECKPOINT)")
    names = tuple(f.strip() for f in (fields or "").split(",") if f.strip())
    check_fields(checkpoint, names)
    return checkpoint, names
