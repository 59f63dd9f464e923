"""Verification scores as pure numpy functions, in the conventions of WeatherBench 2.

Shapes: a field is (..., lat, lon); an ensemble puts its members first, (member, ..., lat, lon).
Pointwise scores (the CRPS) keep every axis but the members; spatial scores reduce the last two
axes with latitude weights, so (step, level, lat, lon) in gives (step, level) out. Everything is
computed in float64.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

_INV_SQRT_PI = 1.0 / np.sqrt(np.pi)


def latitude_weights(lats: np.ndarray) -> np.ndarray:
    """cos(latitude) per row, scaled to a mean of 1: a grid cell's area on a regular grid;
    given (lat, lon) latitudes (a rotated grid's, which change along a row), per point."""
    weights = np.cos(np.deg2rad(np.asarray(lats, dtype=np.float64))).clip(min=0.0)
    if not weights.any():
        raise ValueError("latitude weights are all zero (only polar rows)")
    return weights / weights.mean()


def spatial_mean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Latitude-weighted mean over the last two axes: (..., lat, lon) -> (...); weights per
    row (lat,) or per point (lat, lon)."""
    if np.ndim(weights) == 2:
        points = np.asarray(values, dtype=np.float64) * weights
        return np.asarray(points.sum(axis=(-2, -1)) / weights.sum())
    rows = np.asarray(values, dtype=np.float64).mean(axis=-1)  # (..., lat)
    return np.asarray((rows * weights).sum(axis=-1) / weights.sum())


def rmse(forecast: np.ndarray, truth: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Latitude-weighted root mean square error, (..., lat, lon) -> (...)."""
    return np.sqrt(spatial_mean(np.square(forecast - truth), weights))


def bias(forecast: np.ndarray, truth: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Latitude-weighted mean error (forecast minus truth), (..., lat, lon) -> (...)."""
    return spatial_mean(np.asarray(forecast, dtype=np.float64) - truth, weights)


def anomaly_correlation(
    forecast: np.ndarray, truth: np.ndarray, climatology: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Uncentred anomaly correlation coefficient, (..., lat, lon) -> (...).

    Anomalies are departures from the climatology at the same valid time; uncentred (the
    anomalies' own spatial means are not removed), as ECMWF and WeatherBench 2 score it. NaN
    where either anomaly is zero everywhere (e.g. the climatology as the forecast).
    """
    f = np.asarray(forecast, dtype=np.float64) - climatology
    o = np.asarray(truth, dtype=np.float64) - climatology
    covariance = spatial_mean(f * o, weights)
    norm = np.sqrt(spatial_mean(f * f, weights) * spatial_mean(o * o, weights))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, covariance / np.where(norm > 0, norm, 1.0), np.nan)


def crps_ensemble(members: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Fair ensemble CRPS per point, (member, ...) and (...) -> (...).

    CRPS = mean_i |x_i - y| - sum_ij |x_i - x_j| / (2 M (M - 1)) (Ferro 2014): the expected
    CRPS of the ensemble's distribution had it infinitely many members, so ensembles of
    different sizes compare fairly. One member: the absolute error (there is no spread term).
    """
    x = np.sort(np.asarray(members, dtype=np.float64), axis=0)  # (M, ...)
    m = x.shape[0]
    skill = np.abs(x - truth).mean(axis=0)
    if m == 1:
        return skill
    # sum_ij |x_i - x_j| = 2 sum_i (2i - M - 1) x_(i) over the sorted members, i = 1..M.
    rank = (2 * np.arange(1, m + 1) - m - 1).reshape((m,) + (1,) * (x.ndim - 1))
    pairs = 2.0 * (rank * x).sum(axis=0)
    return skill - pairs / (2.0 * m * (m - 1))


def crps_gaussian(mean: np.ndarray, std: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """CRPS of N(mean, std^2) per point (Gneiting et al. 2005); std 0 gives |mean - y|."""
    mu, sigma = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    error = np.abs(truth - mu)
    safe = np.where(sigma > 0, sigma, 1.0)
    z = (truth - mu) / safe
    density = np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi)
    crps = safe * (z * (2.0 * ndtr(z) - 1.0) + 2.0 * density - _INV_SQRT_PI)
    return np.where(sigma > 0, crps, error)


def ensemble_variance(members: np.ndarray) -> np.ndarray:
    """Unbiased (ddof=1) variance over the members, (member, ...) -> (...); 0 for one member."""
    values = np.asarray(members, dtype=np.float64)
    if values.shape[0] == 1:
        return np.zeros(values.shape[1:])
    return values.var(axis=0, ddof=1)


def finite_ensemble_factor(members: int) -> float:
    """(M + 1) / M: how much larger the ensemble mean's expected squared error is than the
    unbiased ensemble variance when M members and the truth come from one distribution."""
    return (members + 1) / members


def spread_skill_ratio(members: np.ndarray, truth: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """sqrt((M + 1) / M) x RMS spread / RMSE of the ensemble mean, (member, ..., lat, lon) -> (...).

    With M members drawn from the same distribution as the truth, the squared error of the
    ensemble mean is on average (1 + 1/M) times the unbiased ensemble variance (Leutbecher and
    Palmer 2008), so the raw ratio of a reliable ensemble is sqrt(M / (M + 1)); the factor
    `finite_ensemble_factor` makes it 1. Below 1: under-dispersive, above: over-dispersive.
    """
    m = np.asarray(members).shape[0]
    spread = np.sqrt(spatial_mean(ensemble_variance(members), weights))
    error = rmse(np.asarray(members, dtype=np.float64).mean(axis=0), truth, weights)
    return np.sqrt(finite_ensemble_factor(m)) * spread / error


def rank_histogram(
    members: np.ndarray, truth: np.ndarray, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Counts of the truth's rank among the members, (member, ...) and (...) -> (M + 1,).

    Rank r means r members lie below the truth; ties are split at random (seeded), so a
    reliable ensemble gives a flat histogram even for discrete values.
    """
    x = np.asarray(members, dtype=np.float64)
    below = (x < truth).sum(axis=0)
    tied = (x == truth).sum(axis=0)
    generator = rng if rng is not None else np.random.default_rng(0)
    ranks = below + np.floor(generator.random(below.shape) * (tied + 1)).astype(np.int64)
    return np.bincount(ranks.ravel(), minlength=x.shape[0] + 1)
