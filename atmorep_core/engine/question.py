"""A product's question to a model over a domain, and what it needs to know of its store.

`correct` and `downscale` (and any product that shows a model fields it reads itself) resolve
their store once (`StoreFields`: the grid and the model fields' metadata) and ask one `Question`
per time window: the window's physical values are normalised with the checkpoint's statistics,
asked through the engine (tiles, stitching) and the answers de-normalised.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atmorep_core.engine.engine import DomainField, Predictor, Progress, Selector, ask
from atmorep_core.engine.statistics import FieldStatistics
from atmorep_core.engine.tiling import Tiling, tile
from atmorep_core.engine.trained import TrainedModel
from atmorep_core.errors import ConfigError, InputDataError, StoreError
from atmorep_core.grid import LatLonGrid
from atmorep_core.io.store import FieldMeta, Store
from atmorep_core.model.config import FieldModelConfig
from atmorep_core.questions.strategies import MaskingStrategy


@dataclass(frozen=True)
class StoreFields:
    """A store's grid and, per model field, what the store records of it: read once."""

    path: Path
    grid: LatLonGrid
    meta: dict[str, FieldMeta]
    time_steps: dict[str, np.timedelta64 | None]


def read_store_fields(store: Store, names: Iterable[str]) -> StoreFields:
    """The grid and the named fields' metadata; StoreError naming a field the store lacks."""
    present = store.fields
    meta, steps = {}, {}
    for name in names:
        if name not in present:
            raise StoreError(
                f"{store.path}: no field {name!r}, which the checkpoint needs "
                "(is this the checkpoint's store?)"
            )
        arrays = store.field(name)
        meta[name], steps[name] = arrays.meta, arrays.time_step
    return StoreFields(store.path, store.grid, meta, steps)


def tile_domain(domain: LatLonGrid, extent: tuple[int, int]) -> Tiling:
    """Tiles over the part of a checkpoint's grid an input covers; InputDataError if that part
    is smaller than one neighbourhood."""
    try:
        return tile(domain, extent)
    except ConfigError:
        raise InputDataError(
            f"the input covers {domain.describe()} of the checkpoint's grid, less than one "
            f"neighbourhood of {extent[0]} x {extent[1]} points"
        ) from None


@dataclass(frozen=True)
class Question:
    """The model, its fields' statistics and tiles over the domain, and what it is asked."""

    predictor: Predictor
    configs: dict[str, FieldModelConfig]
    stats: dict[str, FieldStatistics]
    tiling: Tiling
    strategy: MaskingStrategy

    @classmethod
    def over(
        cls,
        trained: TrainedModel,
        predictor: Predictor,
        strategy: MaskingStrategy,
        tiling: Tiling,
        statistics_store: Store | None,
        domain: tuple[slice, np.ndarray],
    ) -> Question:
        """The question over `tiling`, whose grid is `domain` (rows, columns) of the
        checkpoint's grid, normalised as in training (local statistics from the store)."""
        configs = {f.name: f for f in trained.config.fields}
        stats = {
            n: FieldStatistics(n, f.levels, trained.normalisation[n], statistics_store, *domain)
            for n, f in configs.items()
        }
        return cls(predictor, configs, stats, tiling, strategy)

    def answer(
        self,
        shown: dict[str, np.ndarray],
        times: np.ndarray,
        answered: np.ndarray,
        selectors: list[Selector],
        batch_size: int,
        progress: Progress | None,
    ) -> list[dict[str, np.ndarray]]:
        """Per selector and field the (L, k, R, C) physical answers to one window at the
        `answered` positions of the answer's time axis; `shown`: (L, T, R, C) physical values
        at the window's `times`, de-normalised at `times[answered]`."""
        fields = {
            n: DomainField(c, self.stats[n].normalise(shown[n], times))
            for n, c in self.configs.items()
        }
        asked = ask(
            self.predictor, fields, times, self.tiling, self.strategy, selectors, batch_size,
            progress,
        )  # fmt: skip
        kept = times[answered]
        return [
            {n: self.stats[n].denormalise(a[n][:, answered], kept) for n in self.configs}
            for a in asked
        ]
