"""Streaming moments for normalisation statistics (applied by the sampler, data/neighbourhood.py).

Moments are (count, mean, m2) with m2 the sum of squared deviations from the mean; two sets merge
exactly (Chan, Golub and LeVeque's pairwise update), so a store's statistics can grow file by file
in one pass over the data and still equal those of all values at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Standard deviations below this are treated as this, so constant fields normalise to zero
# instead of dividing by zero.
MIN_STD = 1e-12


@dataclass(frozen=True)
class Moments:
    count: float
    mean: np.ndarray
    m2: np.ndarray

    def merge(self, other: Moments) -> Moments:
        if self.count == 0:
            return other
        if other.count == 0:
            return self
        count = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / count)
        m2 = self.m2 + other.m2 + delta**2 * (self.count * other.count / count)
        return Moments(count, mean, m2)

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / max(self.count, 1.0))


class RunningMoments:
    """Moments of a stream of equally shaped arrays, one step at a time, in float64.

    Sums are of deviations from the first step (a shift that keeps them small, so the variance
    does not suffer from cancellation); no step-sized temporaries beyond two buffers.
    """

    def __init__(self, first: np.ndarray) -> None:
        self.shift = np.asarray(first, dtype=np.float64)
        self.count = 0
        self.sum = np.zeros_like(self.shift)
        self.sum_sq = np.zeros_like(self.shift)
        self._deviation = np.empty_like(self.shift)
        self._square = np.empty_like(self.shift)

    def add(self, steps: np.ndarray) -> None:
        """Add (n, *shape) values."""
        for step in steps:
            np.subtract(step, self.shift, out=self._deviation)
            self.sum += self._deviation
            np.multiply(self._deviation, self._deviation, out=self._square)
            self.sum_sq += self._square
        self.count += len(steps)

    def moments(self) -> Moments:
        mean_deviation = self.sum / self.count
        m2 = np.maximum(self.sum_sq - self.sum * mean_deviation, 0.0)
        return Moments(float(self.count), self.shift + mean_deviation, m2)


def pool_grid_points(local: Moments) -> Moments:
    """Per-level moments over all grid points from per-point moments (level, lat, lon) that share
    one count: the within-point spread plus the spread of the point means."""
    points = local.mean[0].size
    mean = local.mean.reshape(len(local.mean), -1).mean(axis=1)
    spread = ((local.mean - mean[:, None, None]) ** 2).reshape(len(mean), -1).sum(axis=1)
    m2 = local.m2.reshape(len(mean), -1).sum(axis=1) + local.count * spread
    return Moments(local.count * points, mean, m2)
