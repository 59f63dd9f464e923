"""`evaluate`: score products against the truth, beside the baselines, into one table.

Products are read one at a time (only their headers are read up front, for the field names, the
inits and the checkpoint they name), so many inits cost no more memory than one. Whatever cannot
be scored for one product (a field or level the truth lacks, leads past the truth's end, a
baseline without its input) is skipped with a note; nothing at all to score is an error.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from atmorep_core.errors import ConfigError, MissingInputError, StoreError
from atmorep_core.evaluation.autoregression import Autoregressions
from atmorep_core.evaluation.baselines import BaselineInput, baselines_for
from atmorep_core.evaluation.climatology import Climatology, HourlyMeans, Window, choose_window
from atmorep_core.evaluation.scoring import MODEL, ErrorMaps, Scored, ScoreRow, Tally
from atmorep_core.evaluation.truth import (
    Region,
    TruthField,
    Unavailable,
    level_pairs,
    locate,
    open_truth,
)
from atmorep_core.io.product import Product, ProductField, ProductGrid
from atmorep_core.io.product_read import (
    GRIB_SUFFIXES,
    NETCDF_SUFFIXES,
    ProductInfo,
    peek_product,
    read_product,
)
from atmorep_core.io.store import Store


@dataclass(frozen=True)
class EvaluateOptions:
    """What to score against what."""

    products: tuple[Path, ...]  # product files, NetCDF or GRIB2
    truth: tuple[Path, ...]  # one store, or GRIB files
    cache: Path  # the store GRIB truth is prepared into (incrementally)
    climatology: tuple[datetime, datetime] | None = None  # None: see `choose_window`
    map_leads: tuple[int, ...] | None = None  # error maps at these leads; None: the last


@dataclass
class Evaluation:
    """The scores of every product together, and what could not be scored."""

    products: list[Path]
    truth: Path
    window: Window
    rows: list[ScoreRow]
    ranks: dict[tuple[str, int, int, int], np.ndarray]  # (field, level, lead, members) -> counts
    maps: ErrorMaps
    notes: list[str] = field(default_factory=list)


def expand_products(patterns: Sequence[str]) -> tuple[Path, ...]:
    """Paths and globs -> product files; one per name stem, the NetCDF if both formats are there."""
    found: dict[Path, Path] = {}
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        products = [Path(m) for m in matches if Path(m).suffix in NETCDF_SUFFIXES + GRIB_SUFFIXES]
        if not products and not glob.has_magic(pattern):
            products = [Path(pattern)]  # read_product names the problem with this file
        for path in products:
            stem = path.with_suffix("")
            if stem not in found or path.suffix in NETCDF_SUFFIXES:
                found[stem] = path
    if not found:
        raise ConfigError(f"PRODUCTS {' '.join(patterns)}: no NetCDF or GRIB product matches")
    return tuple(found.values())


def evaluate(options: EvaluateOptions) -> Evaluation:
    """Score every product (model and baselines) per field, level and lead."""
    infos = [peek_product(path) for path in options.products]
    names = list(dict.fromkeys(name for info in infos for name in info.fields))
    store = open_truth(options.truth, names, options.cache)
    if not set(names) & set(store.fields):  # not a retry case: no later run will add them
        raise StoreError(
            f"--truth {store.path}: holds none of the products' fields ({', '.join(names)}); "
            f"it has {', '.join(store.fields) or 'no field'}"
        )
    window = choose_window(
        options.climatology, [i.attributes for i in infos], [i.init for i in infos]
    )
    scorer = _Scorer(store, Climatology(window), ErrorMaps(options.map_leads))
    for info in infos:
        scorer.score(info, read_product(info.path))
    if not scorer.tally.sums:
        reasons = "; ".join(scorer.notes[:3]) or "no product field matched the truth"
        raise MissingInputError(f"nothing could be scored: {reasons}")
    return Evaluation(
        list(options.products), store.path, window, scorer.tally.rows(), scorer.tally.ranks,
        scorer.maps, scorer.notes,
    )  # fmt: skip


class _Scorer:
    """Adds one product after another to the tally; collects notes on what was skipped."""

    def __init__(self, store: Store, climatology: Climatology, maps: ErrorMaps) -> None:
        self.store, self.climatology, self.maps = store, climatology, maps
        self.autoregressions = Autoregressions()
        self.memo: dict[tuple[object, ...], Any] = {}  # baselines' fits, kept between products
        self.tally = Tally()
        self.notes: list[str] = []
        self._regions: dict[ProductGrid, Region] = {}

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def score(self, info: ProductInfo, product: Product) -> None:
        for product_field in product.fields:
            found = self._truth_field(product_field)
            if found is not None:
                self._score_field(info.path, product, product_field, *found)

    def _truth_field(
        self, product_field: ProductField
    ) -> tuple[TruthField, list[int], ProductGrid] | None:
        """The truth on the field's points and the levels it has; the product's level indices;
        the field's grid."""
        name, grid = product_field.name, product_field.grid
        if name not in self.store.fields:
            self.note(f"{name}: not in the truth {self.store.path}; not scored")
            return None
        arrays = self.store.field(name)
        pairs = level_pairs(product_field, arrays)
        lacking = sorted(set(product_field.levels) - {product_field.levels[p] for p, _ in pairs})
        if lacking:
            self.note(f"{name}: the truth has no level {lacking}; not scored")
        if not pairs:
            return None
        if grid not in self._regions:
            self._regions[grid] = locate(grid, self.store.grid)
        truth = TruthField(arrays, self._regions[grid], [t for _, t in pairs])
        return truth, [p for p, _ in pairs], grid

    def _score_field(
        self, path: Path, product: Product, product_field: ProductField, truth: TruthField,
        levels: list[int], grid: ProductGrid,
    ) -> None:  # fmt: skip
        present = self._present(path, product, product_field.name, truth)
        if not present.any():
            return
        valid = np.array(product.valid_times, dtype="datetime64[s]")[present]
        hourly = self.climatology.of(truth)
        scored = Scored(
            product_field.name, tuple(product_field.levels[i] for i in levels),
            tuple(np.array(product.steps_hours)[present].tolist()), truth.read(valid),
            self._climatology_at(hourly, valid), grid,
        )  # fmt: skip
        members = product_field.values[:, present][:, :, levels]  # (M, step, level, lat, lon)
        self.tally.add(MODEL, members, scored)
        for text in self.maps.add(members, scored):
            self.note(text)
        init = np.array([product.init], dtype="datetime64[s]")
        autoregression = self.autoregressions.of(truth, hourly)
        given = BaselineInput(
            truth, init, valid, hourly, autoregression, grid, product.attributes, self.memo
        )
        self._baselines(product.kind, given, scored)

    def _present(self, path: Path, product: Product, name: str, truth: TruthField) -> np.ndarray:
        """(step,) True where the truth has the lead's valid time; a note names the others."""
        present = truth.indices(np.array(product.valid_times, dtype="datetime64[s]")) >= 0
        if not present.all():
            lacking = np.array(product.steps_hours)[~present]
            self.note(f"{path.name}: no truth for {name} at leads {', '.join(map(str, lacking))} h")
        return present

    def _climatology_at(self, hourly: HourlyMeans, times: np.ndarray) -> np.ndarray | None:
        try:
            return hourly.at(times)
        except Unavailable as missing:
            self.note(f"anomaly correlation not scored: {missing}")
            return None

    def _baselines(self, kind: str, given: BaselineInput, scored: Scored) -> None:
        for baseline in baselines_for(kind):
            try:
                self.tally.add(baseline.name, baseline.forecast(given), scored)
            except Unavailable as missing:
                self.note(f"{baseline.name} not scored: {missing}")
