"""Where a product is asked: the tiles over its area, and its fields' values and statistics there.

Every product (forecast, interpolation, counterfactual) reads its input over the *domain* (the
area padded to whole tiles, `tiling.py`), normalises it as in training, asks the model, and
keeps the area's points of the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from atmorep_core.engine.inputs import read_window
from atmorep_core.engine.statistics import FieldStatistics
from atmorep_core.engine.tiling import Tiling, area_from_bounds, tile
from atmorep_core.engine.trained import TrainedModel
from atmorep_core.io.product import ProductField
from atmorep_core.io.store import Store
from atmorep_core.model.config import FieldModelConfig

Bounds = tuple[float, float, float, float]  # north, west, south, east in degrees


@dataclass(frozen=True)
class Domain:
    """The tiling of a product's area and, per model field, its configuration and statistics."""

    tiling: Tiling
    configs: dict[str, FieldModelConfig]
    statistics: dict[str, FieldStatistics]

    @classmethod
    def of(
        cls, trained: TrainedModel, store: Store, bounds: Bounds | None, statistics: Store | None
    ) -> Domain:
        """Tiles of the trained neighbourhood over `bounds` (None: the whole grid) of the store."""
        area = None if bounds is None else area_from_bounds(store.grid, bounds)
        tiling = tile(store.grid, trained.extent[1:], area)
        configs = {f.name: f for f in trained.config.fields}
        stats = {
            name: FieldStatistics(
                name, f.levels, trained.normalisation[name], statistics, tiling.domain_rows,
                tiling.domain_columns,
            )
            for name, f in configs.items()
        }  # fmt: skip
        return cls(tiling, configs, stats)

    def read(self, store: Store, name: str, times: np.ndarray) -> np.ndarray:
        """(L, time, R, C) physical values of a field over the domain."""
        columns = self.tiling.domain_columns
        levels = self.configs[name].levels
        return read_window(store, name, levels, times, self.tiling.domain_rows, columns)

    def read_normalised(self, store: Store, times: np.ndarray) -> dict[str, np.ndarray]:
        """Per field the normalised (L, time, R, C) values over the domain."""
        return {
            name: self.statistics[name].normalise(self.read(store, name, times), times)
            for name in self.configs
        }

    def in_area(self, values: np.ndarray) -> np.ndarray:
        """(..., R, C) over the domain -> (..., r, c) over the area."""
        rows, columns = self.tiling.area_in_domain()
        return values[..., rows, :][..., columns]

    def product_field(self, store: Store, name: str, values: np.ndarray) -> ProductField:
        """(member, step, L, r, c) physical values over the area as a product field."""
        level_type = store.field(name).meta.level_type
        levels = self.configs[name].levels
        return ProductField(name, level_type, levels, self.tiling.area_grid(), values)


def provenance(trained: TrainedModel, inputs: str, members: int, seed: int) -> dict[str, str]:
    """The attributes every product records: which model, input and draws made it."""
    return {
        "checkpoint": str(trained.folder),
        "checkpoint_step": str(trained.step),
        "input_store": inputs,
        "members": str(members),
        "seed": str(seed),
    }
