"""The bias-correction baselines a statistician tries first, from ibicus (not written again here):
per grid point, the mean bias removed (additive linear scaling) and empirical quantile mapping
(nonparametric CDFs of the model's and the truth's values).

Each is fitted on a training period where both the biased field and the truth are known, and
applied to new biased output of the same field on the same grid. The training period here is
hours or days, not decades: ibicus' running window over the days of the year is switched off, so
one mapping per grid point covers the whole period.

Only fields corrected additively (temperature, wind, geopotential) are served for now; an
accumulated field (precipitation) needs ibicus' multiplicative and hurdle-model settings, in the
units ibicus expects (kg m-2 s-1), which the store does not hold.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from atmorep_core.errors import ConfigError
from atmorep_core.fields import lookup

BIAS_METHODS = ("mean_bias", "quantile_mapping")


def correct_bias(
    method: str, truth: np.ndarray, biased: np.ndarray, new: np.ndarray, field: str
) -> np.ndarray:
    """`new` (time, ...) corrected with the mapping fitted on `biased` against `truth` (time, ...)
    of the training period, per grid point (every axis after the first)."""
    if method not in _DEBIASERS:
        raise ConfigError(f"bias method {method!r}: known methods are {', '.join(BIAS_METHODS)}")
    if lookup(field).accumulated:
        raise ConfigError(
            f"{field}: bias baselines of accumulated fields are not served yet (additive only)"
        )
    if truth.shape != biased.shape or truth.shape[1:] != new.shape[1:]:
        raise ValueError(f"shapes differ: truth {truth.shape}, biased {biased.shape}, {new.shape}")
    points = truth.shape[1:]
    debiaser = _DEBIASERS[method]()
    with warnings.catch_warnings():  # ibicus warns that hourly data is not daily: known here
        warnings.simplefilter("ignore")
        corrected = debiaser.apply(
            _columns(truth), _columns(biased), _columns(new), progressbar=False
        )
    return np.asarray(corrected, dtype=np.float64).reshape(len(new), *points)


def _columns(values: np.ndarray) -> np.ndarray:
    """(time, lat, lon) as ibicus takes it: time first, two spatial axes (levels folded in)."""
    flat = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    return flat[:, :, None]


def _mean_bias() -> Any:
    from ibicus.debias import LinearScaling

    return LinearScaling.from_variable("tas", running_window_mode=False)  # additive


def _quantile_mapping() -> Any:
    from ibicus.debias import QuantileMapping

    return QuantileMapping.from_variable(
        "tas", running_window_mode=False, mapping_type="nonparametric"
    )


_DEBIASERS: dict[str, Callable[[], Any]] = {
    "mean_bias": _mean_bias,
    "quantile_mapping": _quantile_mapping,
}
