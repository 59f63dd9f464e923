"""The statistician's forecast baseline: per grid point, a linear autoregression on recent values.

For each lead L (hours), each grid point and level gets its own least-squares regression of the
truth at init + L on the truth at init - lag for `LAGS_H` and the hour of day of the valid time
(two harmonics, so a diurnal cycle of any phase and a sharper afternoon peak both fit), plus an
intercept. Fitted on a window of the truth (the checkpoint's training window, as the climatology
is), one lead at a time when a product first asks for it, from the normal equations accumulated
over chunks of inits so that a long window never has to be in memory at once.

Values are centred on the climatology's mean per point before fitting: the lags of 2 m
temperature differ by a few kelvin around 280, and centring keeps the normal equations well
conditioned. A tiny ridge (relative to the features' scale) keeps points with a constant series
(e.g. a masked sea point) solvable.
"""

from __future__ import annotations

import warnings

import numpy as np

from atmorep_core.evaluation.climatology import HOURS, HourlyMeans, Window, hour_of_day
from atmorep_core.evaluation.truth import TruthField, Unavailable

LAGS_H = (0, 1, 2, 3, 6, 12, 23, 24)
HARMONICS = 2
FEATURES = len(LAGS_H) + 2 * HARMONICS + 1  # lags, sin/cos per harmonic, intercept
_RIDGE = 1e-8  # relative to the mean diagonal of the normal equations
_CHUNK_VALUES = 32 * 2**20  # float64 feature values per chunk of inits


class Autoregression:
    """Fits (lazily, once per lead) and applies the regressions of one truth field."""

    def __init__(self, truth: TruthField, hourly: HourlyMeans) -> None:
        self.truth, self.window = truth, hourly.window
        with warnings.catch_warnings():  # a window without truth: `_fit` names it
            warnings.simplefilter("ignore", RuntimeWarning)
            self.centre = np.nanmean(hourly.means, axis=0)  # (level, lat, lon)
        self._coefficients: dict[int, np.ndarray] = {}  # lead -> (level, lat, lon, FEATURES)

    def forecast(self, init: np.datetime64, valid_times: np.ndarray) -> np.ndarray:
        """(step, level, lat, lon): the regression's value at each valid time from this init."""
        recent = self.truth.read(init - _lags()) - self.centre  # (lag, level, lat, lon)
        steps = []
        for valid in valid_times:
            lead = _lead_hours(init, valid)
            features = _features(recent[None], hour_of_day(np.array([valid])))[0]
            steps.append((self.coefficients(lead) * np.moveaxis(features, 0, -1)).sum(axis=-1))
        return np.stack(steps) + self.centre

    def coefficients(self, lead: int) -> np.ndarray:
        if lead not in self._coefficients:
            self._coefficients[lead] = self._fit(lead)
        return self._coefficients[lead]

    def _fit(self, lead: int) -> np.ndarray:
        inits = _training_inits(self.truth, self.window, lead)
        if len(inits) < 2 * FEATURES:
            raise Unavailable(
                f"the window {self.window.describe()} holds {len(inits)} hourly series long "
                f"enough for lags of {max(LAGS_H)} h and a {lead} h lead; "
                f"{2 * FEATURES} are needed"
            )
        points = self.centre.shape
        normal = np.zeros((*points, FEATURES, FEATURES))
        moment = np.zeros((*points, FEATURES))
        chunk = max(1, _CHUNK_VALUES // (FEATURES * self.centre.size))
        for start in range(0, len(inits), chunk):
            part = inits[start : start + chunk]
            first = int(self.truth.indices(part[:1] - _lags()[-1:])[0])
            last = int(self.truth.indices(part[-1:] + np.timedelta64(lead, "h"))[0])
            block = self.truth.block(first, last + 1) - self.centre
            lagged = block[self.truth.indices(part[:, None] - _lags()) - first]
            features = _features(lagged, hour_of_day(part + np.timedelta64(lead, "h")))
            target = block[self.truth.indices(part + np.timedelta64(lead, "h")) - first]
            normal += np.einsum("nf...,ng...->...fg", features, features, optimize=True)
            moment += np.einsum("nf...,n...->...f", features, target, optimize=True)
        scale = np.trace(normal, axis1=-2, axis2=-1)[..., None, None] / FEATURES
        normal += _RIDGE * np.maximum(scale, 1.0) * np.eye(FEATURES)
        return np.linalg.solve(normal, moment[..., None])[..., 0]


class Autoregressions:
    """One `Autoregression` per truth field and product region, kept for every product."""

    def __init__(self) -> None:
        self._cache: dict[tuple[object, ...], Autoregression] = {}

    def of(self, truth: TruthField, hourly: HourlyMeans) -> Autoregression:
        if truth.key not in self._cache:
            self._cache[truth.key] = Autoregression(truth, hourly)
        return self._cache[truth.key]


def _lags() -> np.ndarray:
    return np.array(LAGS_H, dtype="timedelta64[h]").astype("timedelta64[s]")


def _lead_hours(init: np.datetime64, valid: np.datetime64) -> int:
    hours = (valid - init) / np.timedelta64(1, "h")
    if hours <= 0 or hours != int(hours):
        raise Unavailable(f"the autoregression forecasts whole hours ahead, not {hours:g} h")
    return int(hours)


def _training_inits(truth: TruthField, window: Window, lead: int) -> np.ndarray:
    """Truth times whose lags and lead all lie in the truth and the window."""
    inside = truth.times <= window.last
    if window.first is not None:
        inside &= truth.times >= window.first
    candidates = truth.times[inside]
    if candidates.size == 0:
        return candidates
    first, last = candidates[0], candidates[-1]
    needed = np.concatenate([candidates[:, None] - _lags(), candidates[:, None]], axis=1)
    needed = np.concatenate([needed, candidates[:, None] + np.timedelta64(lead, "h")], axis=1)
    present = (truth.indices(needed.ravel()) >= 0).reshape(needed.shape)
    within = (needed >= first) & (needed <= last)
    return candidates[(present & within).all(axis=1)]


def _features(lagged: np.ndarray, hours: np.ndarray) -> np.ndarray:
    """(init, FEATURES, level, lat, lon) from (init, lag, level, lat, lon) centred lags and the
    valid times' hours of day (init,)."""
    count, points = lagged.shape[0], lagged.shape[2:]
    angle = 2 * np.pi * hours / HOURS
    cycle = [f(k * angle) for k in range(1, HARMONICS + 1) for f in (np.sin, np.cos)]
    constant = np.stack([*cycle, np.ones(count)], axis=1)  # (init, 2 * HARMONICS + 1)
    spread = np.broadcast_to(constant[(..., *[None] * len(points))], (*constant.shape, *points))
    return np.concatenate([lagged, spread], axis=1)
