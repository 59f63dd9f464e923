"""`atmorep import-atmorep`: a published AtmoRep model folder as an ordinary run folder
(recipe.yaml and a step-0 checkpoint in safetensors) that every product command accepts.

The run folder is written into a staging folder beside RUN and renamed at the end, so a failure
leaves nothing half-written in RUN.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from atmorep_core.data.normalize import normalisation_record
from atmorep_core.data.original_statistics import write_original_statistics
from atmorep_core.errors import ConfigError, StoreError
from atmorep_core.io.store import Store
from atmorep_core.model import checkpoint
from atmorep_core.model.config import ModelConfig
from atmorep_core.model.original.folder import PublishedModel, read_published
from atmorep_core.model.original.normalisation import OriginalNormalisation

STATISTICS = "statistics.zarr"  # the original's statistics in a run folder, as a store


@dataclass(frozen=True)
class Imported:
    """What an import made: the model's id, its number of parameters and the run folder."""

    model_id: str
    parameters: int
    run_dir: Path
    statistics: Path | None  # the original's statistics as a store; None: the store's own


def import_published(
    model_dir: Path, run_dir: Path, store: Path, original: Path | None = None
) -> Imported:
    """Read the published model (weights as tensors only) and write RUN; ConfigError if RUN
    holds files, StoreError if the store lacks a field or level of the model."""
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise ConfigError(f"--run-dir: {run_dir} already holds files; choose a new folder")
    published = read_published(model_dir)
    opened = Store.open(store)
    normalisation = store_normalisation(opened, published.config)
    statistics = None if original is None else OriginalNormalisation.open(original)
    _write_run(run_dir, published, opened, normalisation, statistics)
    total = sum(v.numel() for v in published.state.values())
    return Imported(
        published.model_id, total, run_dir, None if original is None else run_dir / STATISTICS
    )


def store_normalisation(store: Store, config: ModelConfig) -> dict[str, Any]:
    """Per field, the statistics a product normalises with; StoreError for a field or level the
    store lacks."""
    for field in config.fields:
        if field.name not in store.fields:
            raise StoreError(
                f"{store.path}: no field {field.name!r} (the model needs it; the store has "
                f"{', '.join(store.fields) or 'none'})"
            )
        levels = [int(v) for v in store.field(field.name).levels]
        missing = [lv for lv in field.levels if lv not in levels]
        if missing:
            raise StoreError(f"{store.path}: {field.name} lacks levels {missing} (has {levels})")
    return normalisation_record(store, {f.name: f.normalisation for f in config.fields})


def _write_run(
    run_dir: Path,
    published: PublishedModel,
    opened: Store,
    normalisation: dict[str, Any],
    original: OriginalNormalisation | None,
) -> None:
    """recipe.yaml and step-00000000/ (and the original's statistics as a store), written into
    a staging folder and renamed into place."""
    staging = run_dir.with_name(run_dir.name + ".importing")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    store = opened.path
    try:
        if original is not None:
            normalisation = write_original_statistics(
                original, published.config.fields, opened, staging / STATISTICS,
                recorded_as=run_dir / STATISTICS,
            )  # fmt: skip
        recipe = {
            "model": published.config.model_dump(mode="json"),
            "data": {"store": str(store)},
            "training": published.training,
        }
        (staging / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
        window = {"store": str(store), "target": None, "train": None, "validation": None}
        saved = checkpoint.Checkpoint(
            step=0, model=published.state, config=recipe, normalisation=normalisation,
            data_window=window,
        )  # fmt: skip
        checkpoint.save(staging, saved)
        if run_dir.exists():
            run_dir.rmdir()  # empty, checked before
        staging.rename(run_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
