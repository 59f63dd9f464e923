"""Streaming moments for normalisation statistics (applied by the sampler, data/neighbourhood.py).

Moments are (count, mean, m2) with m2 the sum of squared deviations from the mean; two sets merge
exactly (Chan, Golub and LeVeque's pairwise update), so a store's statistics can grow file by file
in one pass over the data and still equal those of all values at once.

Fields that allow missing values (NaN in the store) are summed NaN-aware: the count is then per
grid point (an array) instead of one number, and NaN values contribute nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from atmorep_core.io.store import Store

# Standard deviations below this are treated as this, so constant fields normalise to zero
# instead of dividing by zero.
MIN_STD = 1e-12


@dataclass(frozen=True)
class Moments:
    count: float | np.ndarray  # one count, or one per element of mean (NaN-aware sums)
    mean: np.ndarray
    m2: np.ndarray

    def merge(self, other: Moments) -> Moments:
        if np.all(np.asarray(self.count) == 0):
            return other
        if np.all(np.asarray(other.count) == 0):
            return self
        count = self.count + other.count
        safe = np.where(count > 0, count, 1.0) if isinstance(count, np.ndarray) else count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / safe)
        m2 = self.m2 + other.m2 + delta**2 * (self.count * other.count / safe)
        return Moments(count, mean, m2)

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / np.maximum(self.count, 1.0))


class RunningMoments:
    """Moments of a stream of equally shaped arrays, one step at a time, in float64.

    Sums are of deviations from the first step (a shift that keeps them small, so the variance
    does not suffer from cancellation); no step-sized temporaries beyond two buffers.
    With `skip_nan`, NaN values are left out and counted per element (`valid`).
    """

    def __init__(self, first: np.ndarray, skip_nan: bool = False) -> None:
        self.shift = np.asarray(first, dtype=np.float64)
        self.skip_nan = skip_nan
        if skip_nan:
            self.shift = np.nan_to_num(self.shift, nan=0.0)
            self.valid = np.zeros(self.shift.shape, dtype=np.int64)
        self.count = 0  # steps added
        self.sum = np.zeros_like(self.shift)
        self.sum_sq = np.zeros_like(self.shift)
        self._deviation = np.empty_like(self.shift)
        self._square = np.empty_like(self.shift)

    def add(self, steps: np.ndarray) -> None:
        """Add (n, *shape) values."""
        for step in steps:
            np.subtract(step, self.shift, out=self._deviation)
            if self.skip_nan:
                present = ~np.isnan(self._deviation)
                self.valid += present
                self._deviation[~present] = 0.0
            self.sum += self._deviation
            np.multiply(self._deviation, self._deviation, out=self._square)
            self.sum_sq += self._square
        self.count += len(steps)

    def moments(self) -> Moments:
        count: float | np.ndarray = self.valid.astype(np.float64) if self.skip_nan else self.count
        mean_deviation = self.sum / np.maximum(count, 1.0)
        m2 = np.maximum(self.sum_sq - self.sum * mean_deviation, 0.0)
        return Moments(count if self.skip_nan else float(count), self.shift + mean_deviation, m2)


def pool_grid_points(local: Moments) -> Moments:
    """Per-level moments over all grid points from per-point moments (level, lat, lon) that share
    one count: the within-point spread plus the spread of the point means."""
    if isinstance(local.count, np.ndarray):
        return _pool_weighted(local)
    points = local.mean[0].size
    mean = local.mean.reshape(len(local.mean), -1).mean(axis=1)
    spread = ((local.mean - mean[:, None, None]) ** 2).reshape(len(mean), -1).sum(axis=1)
    m2 = local.m2.reshape(len(mean), -1).sum(axis=1) + local.count * spread
    return Moments(local.count * points, mean, m2)


def _pool_weighted(local: Moments) -> Moments:
    """pool_grid_points for per-point counts (level, lat, lon): means weighted by their counts."""
    levels = len(local.mean)
    count = np.asarray(local.count).reshape(levels, -1)
    total = count.sum(axis=1)
    point_mean = local.mean.reshape(levels, -1)
    mean = (count * point_mean).sum(axis=1) / np.maximum(total, 1.0)
    spread = (count * (point_mean - mean[:, None]) ** 2).sum(axis=1)
    m2 = local.m2.reshape(levels, -1).sum(axis=1) + spread
    return Moments(total, mean, m2)


def normalisation_record(store: Store, kinds: Mapping[str, str]) -> dict[str, Any]:
    """What a checkpoint records of each field's normalisation (field name: kind, global or
    local): the kind, the store it came from, its levels, months and global statistics."""
    result: dict[str, Any] = {}
    for name, kind in kinds.items():
        arrays = store.field(name)
        mean, std = arrays.global_norm()
        result[name] = {
            "kind": kind,
            "store": str(store.path.resolve()),
            "levels": [int(v) for v in arrays.levels],
            "global_mean": [float(v) for v in mean],
            "global_std": [float(v) for v in std],
            "months": [int(m) for m in arrays.months],
        }
    return result
