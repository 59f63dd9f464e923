"""Scores summed over many products: per source (the model or a baseline), field, level and lead.

Each product adds its latitude-weighted spatial means; the table averages them over the products
(inits) that had that lead: RMSE is the root of the mean MSE, spread the root of the mean
variance, ACC the mean of the per-init correlations, the CRPS and bias plain means.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from atmorep_core.evaluation import metrics
from atmorep_core.io.product import ProductGrid
from atmorep_core.rotated_grid import RotatedGrid

MODEL = "model"


@dataclass(frozen=True)
class Scored:
    """One product field and its truth on the leads and levels that can be scored."""

    field: str
    levels: tuple[int, ...]  # the product's level numbers
    leads: tuple[int, ...]  # hours
    truth: np.ndarray  # (step, level, lat, lon)
    climatology: np.ndarray | None  # (step, level, lat, lon); None: not available
    grid: ProductGrid  # lat-lon, or rotated (weighted per point)


@dataclass(frozen=True)
class ScoreRow:
    """One line of the score table; None where a score does not apply."""

    field: str
    level: int
    lead_h: int
    source: str
    inits: int
    members: int
    rmse: float
    bias: float
    acc: float | None
    crps: float
    crps_gaussian: float
    spread: float | None
    spread_skill: float | None


def partial_scores(members: np.ndarray, scored: Scored) -> dict[str, np.ndarray]:
    """Spatial means of one product, each (step, level), from (member, step, level, lat, lon)."""
    truth, weights = scored.truth, metrics.latitude_weights(latitudes(scored.grid))
    mean = members.mean(axis=0, dtype=np.float64)
    variance = metrics.ensemble_variance(members)
    nan = np.full(truth.shape[:2], np.nan)
    return {
        "mse": metrics.rmse(mean, truth, weights) ** 2,
        "error": metrics.bias(mean, truth, weights),
        "crps": metrics.spatial_mean(metrics.crps_ensemble(members, truth), weights),
        "crps_gaussian": metrics.spatial_mean(
            metrics.crps_gaussian(mean, np.sqrt(variance), truth), weights
        ),
        "variance": metrics.spatial_mean(variance, weights),
        # Summed with each product's own factor, so ensembles of different sizes mix fairly.
        "variance_reliable": metrics.finite_ensemble_factor(members.shape[0])
        * metrics.spatial_mean(variance, weights),
        "acc": nan
        if scored.climatology is None
        else metrics.anomaly_correlation(mean, truth, scored.climatology, weights),
    }


def latitudes(grid: ProductGrid) -> np.ndarray:
    """Geographic latitude per row (lat,), or per point (lat, lon) on a rotated grid."""
    if isinstance(grid, RotatedGrid):
        return grid.lats
    return grid.geographic()[0] if grid.is_rotated else grid.lats


@dataclass
class Tally:
    """The running sums of every (field, level, lead, source) and the model's rank histograms."""

    sums: dict[tuple[str, int, int, str], dict[str, float]] = field(default_factory=dict)
    ranks: dict[tuple[str, int, int, int], np.ndarray] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))

    def add(self, source: str, members: np.ndarray, scored: Scored) -> None:
        """One product's (member, step, level, lat, lon) forecast of `scored`'s truth."""
        if source not in self.sources:
            self.sources.append(source)
        parts = partial_scores(members, scored)
        for (s, lead), (i, level) in _cells(scored):
            sums = self.sums.setdefault((scored.field, level, lead, source), defaultdict(float))
            for name, values in parts.items():
                _add_score(sums, name, float(values[s, i]))
            sums["inits"] += 1
            sums["members"] = max(sums["members"], members.shape[0])
        if source == MODEL and members.shape[0] > 1:
            self._add_ranks(members, scored)

    def _add_ranks(self, members: np.ndarray, scored: Scored) -> None:
        for (s, lead), (i, level) in _cells(scored):
            key = (scored.field, level, lead, members.shape[0])
            counts = metrics.rank_histogram(members[:, s, i], scored.truth[s, i], self.rng)
            self.ranks[key] = self.ranks.get(key, 0) + counts

    def rows(self) -> list[ScoreRow]:
        """The table, by field, level, lead, then source (the model first)."""
        order = {name: i for i, name in enumerate(self.sources)}
        keys = sorted(self.sums, key=lambda k: (k[0], k[1], k[2], order[k[3]]))
        return [_row(key, self.sums[key]) for key in keys]


def _cells(scored: Scored) -> Iterator[tuple[tuple[int, int], tuple[int, int]]]:
    """((step index, lead), (level index, level)) of every cell of the table a product fills."""
    return itertools.product(enumerate(scored.leads), enumerate(scored.levels))


def _add_score(sums: dict[str, float], name: str, value: float) -> None:
    """Add a finite value and count it (ACC is NaN where no climatology or no anomaly)."""
    if math.isfinite(value):
        sums[name] += value
        sums[f"{name}_n"] += 1


def _row(key: tuple[str, int, int, str], sums: dict[str, float]) -> ScoreRow:
    def mean(name: str) -> float | None:
        count = sums.get(f"{name}_n", 0)
        return sums[name] / count if count else None

    rmse = math.sqrt(mean("mse") or 0.0)
    ensemble = sums["members"] > 1
    spread = math.sqrt(sums["variance"] / sums["inits"]) if ensemble else None
    reliable = math.sqrt(sums["variance_reliable"] / sums["inits"])
    return ScoreRow(
        field=key[0], level=key[1], lead_h=key[2], source=key[3],
        inits=int(sums["inits"]), members=int(sums["members"]),
        rmse=rmse, bias=mean("error") or 0.0, acc=mean("acc"),
        crps=mean("crps") or 0.0, crps_gaussian=mean("crps_gaussian") or 0.0,
        spread=spread, spread_skill=reliable / rmse if ensemble and rmse > 0 else None,
    )  # fmt: skip


@dataclass
class ErrorMaps:
    """Per (field, level, lead): sums of the model's ensemble-mean error at every grid point."""

    leads: tuple[int, ...] | None  # the leads to map; None: each product's last
    sums: dict[tuple[str, int, int], np.ndarray] = field(default_factory=dict)  # (2, lat, lon)
    counts: dict[tuple[str, int, int], int] = field(default_factory=dict)
    grids: dict[tuple[str, int, int], ProductGrid] = field(default_factory=dict)

    def add(self, members: np.ndarray, scored: Scored) -> list[str]:
        """Add one product's errors at the mapped leads; notes for those on another grid."""
        wanted = self.leads if self.leads is not None else scored.leads[-1:]
        error = members.mean(axis=0, dtype=np.float64) - scored.truth  # (step, level, lat, lon)
        notes = []
        for s, lead in enumerate(scored.leads):
            for i, level in enumerate(scored.levels):
                key = (scored.field, level, lead)
                if lead not in wanted:
                    continue
                if self.grids.setdefault(key, scored.grid) != scored.grid:
                    notes.append(f"error map {key}: a product on another grid is left out")
                    continue
                both = np.stack([error[s, i], error[s, i] ** 2])
                self.sums[key] = self.sums.get(key, 0) + both
                self.counts[key] = self.counts.get(key, 0) + 1
        return notes

    def mean_and_rms(self, key: tuple[str, int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Mean error and root mean square error per grid point, each (lat, lon)."""
        total, count = self.sums[key], self.counts[key]
        return total[0] / count, np.sqrt(total[1] / count)
