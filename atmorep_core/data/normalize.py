"""Streaming moments for normalisation statistics, and applying them.

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

    @classmethod
    def of(cls, values: np.ndarray, axis: int | tuple[int, ...]) -> Moments:
        """Moments of `values` (any float dtype, computed in float64) reduced over `axis`."""
        values = np.asarray(values, dtype=np.float64)
        count = float(np.prod([values.shape[a] for a in np.atleast_1d(axis)]))
        mean = values.mean(axis=axis)
        deviations = values - np.expand_dims(mean, axis)
        return cls(count, mean, np.square(deviations).sum(axis=axis))

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


def normalise(values: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return (values - mean) / np.maximum(std, MIN_STD)


def denormalise(values: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return values * np.maximum(std, MIN_STD) + mean
