"""The bias-correction baselines a statistician tries first, from ibicus (not written again here):
per grid point, the mean bias removed (additive linear scaling) and empirical quantile mapping
(nonparametric CDFs of the model's and the truth's values).

Each is fitted on a training period where both the biased field and the truth are known, and
applied to new biased output of the same field on the same grid. The training period here is
hours or days, not decades: ibicus' running window over the days of the year is switched off, so
one mapping per grid point covers the whole period.

Fields such as temperature, wind and geopotential are corrected additively. Accumulated fields
(precipitation, metres over `accumulation_s` seconds in the store) go to ibicus as the flux it
expects (kg m-2 s-1) with its precipitation settings: the mean bias as a ratio (multiplicative
scaling), the quantile mapping through a hurdle model (the chance of a dry hour, then a gamma
distribution of the amounts). They come back in metres over the same period, never negative.
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
    method: str,
    truth: np.ndarray,
    biased: np.ndarray,
    new: np.ndarray,
    field: str,
    accumulation_s: int | None = None,
) -> np.ndarray:
    """`new` (time, ...) corrected with the mapping fitted on `biased` against `truth` (time, ...)
    of the training period, per grid point (every axis after the first). Accumulated fields need
    their accumulation period in seconds."""
    if method not in _DEBIASERS:
        raise ConfigError(f"bias method {method!r}: known methods are {', '.join(BIAS_METHODS)}")
    if truth.shape != biased.shape or truth.shape[1:] != new.shape[1:]:
        raise ValueError(f"shapes differ: truth {truth.shape}, biased {biased.shape}, {new.shape}")
    accumulated = lookup(field).accumulated
    if accumulated and not accumulation_s:
        raise ConfigError(f"{field}: an accumulated field needs its accumulation period")
    # metres over the period -> kg m-2 s-1 (1 m of water is 1000 kg m-2)
    flux = 1000.0 / accumulation_s if accumulated and accumulation_s else 1.0
    debiaser = _DEBIASERS[method]("pr" if accumulated else "tas")
    with warnings.catch_warnings():  # ibicus warns that hourly data is not daily: known here
        warnings.simplefilter("ignore")
        corrected = debiaser.apply(
            _columns(truth * flux), _columns(biased * flux), _columns(new * flux),
            progressbar=False,
        )  # fmt: skip
    result = np.asarray(corrected, dtype=np.float64).reshape(new.shape) / flux
    return np.maximum(result, 0.0) if accumulated else result


def _columns(values: np.ndarray) -> np.ndarray:
    """(time, lat, lon) as ibicus takes it: time first, two spatial axes (levels folded in)."""
    flat = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    return flat[:, :, None]


def _mean_bias(variable: str) -> Any:
    from ibicus.debias import LinearScaling

    # tas: additive; pr: multiplicative
    return LinearScaling.from_variable(variable, running_window_mode=False)


def _quantile_mapping(variable: str) -> Any:
    from ibicus.debias import QuantileMapping

    if variable == "pr":  # a hurdle model: dry hours, then gamma-distributed amounts
        return QuantileMapping.from_variable(variable, running_window_mode=False)
    return QuantileMapping.from_variable(
        variable, running_window_mode=False, mapping_type="nonparametric"
    )


_DEBIASERS: dict[str, Callable[[str], Any]] = {
    "mean_bias": _mean_bias,
    "quantile_mapping": _quantile_mapping,
}
