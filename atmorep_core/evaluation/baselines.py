"""Reference forecasts a product must beat, made from the truth itself: one function each.

A baseline takes a `BaselineInput` (the truth on the product's points and levels, the init, the
valid times being scored, the climatology and the autoregression fitted on the same window) and
returns a one-member forecast
(1, step, level, lat, lon) of the same shape as the product's values. Registering a function
with the product kinds it applies to is all a new baseline needs; "linear in time" for
interpolation products (the truth at the given times either side, interpolated) and "bilinear
in space" for downscaling (the truth coarsened to the input grid and interpolated back) will be
one function each. A baseline that lacks its input for a product raises `Unavailable`.
Interpolation products name the steps they copied from their input (attribute
`given_steps_hours`), and their baselines interpolate the truth at those steps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from atmorep_core.evaluation.autoregression import Autoregression
from atmorep_core.evaluation.climatology import HourlyMeans
from atmorep_core.evaluation.downscaling_baselines import (
    CoarseInput,
    regression_features,
    regression_fit,
)
from atmorep_core.evaluation.truth import TruthField, Unavailable
from atmorep_core.io.product import ProductGrid


@dataclass(frozen=True)
class BaselineInput:
    """What a baseline may use to forecast one product field."""

    truth: TruthField  # on the product's grid points and (matched) levels
    init: np.ndarray  # (1,) datetime64[s]: the product's base time
    valid_times: np.ndarray  # (step,) datetime64[s]: the leads being scored
    climatology: HourlyMeans
    autoregression: Autoregression
    grid: ProductGrid  # the product field's grid
    attributes: Mapping[str, str] = field(default_factory=dict)  # the product's provenance
    memo: dict[tuple[object, ...], Any] = field(default_factory=dict)  # fits kept between products


BaselineFunction = Callable[[BaselineInput], np.ndarray]  # -> (1, step, level, lat, lon)


@dataclass(frozen=True)
class Baseline:
    name: str
    kinds: tuple[str, ...]  # the product kinds (`io.product.PRODUCT_KINDS`) it applies to
    forecast: BaselineFunction


BASELINES: dict[str, Baseline] = {}


def register(name: str, kinds: tuple[str, ...]) -> Callable[[BaselineFunction], BaselineFunction]:
    """Decorator: add a baseline function to the registry under `name`."""

    def add(function: BaselineFunction) -> BaselineFunction:
        BASELINES[name] = Baseline(name, kinds, function)
        return function

    return add


def baselines_for(kind: str) -> list[Baseline]:
    """The registered baselines that apply to products of this kind, in registration order."""
    return [b for b in BASELINES.values() if kind in b.kinds]


@register("persistence", kinds=("forecast",))
def persistence(given: BaselineInput) -> np.ndarray:
    """The truth at the init, unchanged at every lead."""
    at_init = given.truth.read(given.init)  # (1, level, lat, lon); Unavailable if absent
    return np.repeat(at_init[:, None], len(given.valid_times), axis=1)


@register("autoregression", kinds=("forecast",))
def autoregression(given: BaselineInput) -> np.ndarray:
    """Per grid point, the linear regression on the truth at lags 0-3, 6, 12, 23 and 24 h before
    the init and the hour of day (`autoregression.py`)."""
    return given.autoregression.forecast(given.init[0], given.valid_times)[None]


@register(
    "climatology",
    kinds=("forecast", "interpolation", "correction", "counterfactual", "downscaling"),
)
def climatology(given: BaselineInput) -> np.ndarray:
    """The mean of the climatology window at each valid time's hour of day, per grid point."""
    return given.climatology.at(given.valid_times)[None]


@register("linear_in_time", kinds=("interpolation",))
def linear_in_time(given: BaselineInput) -> np.ndarray:
    """The truth at the product's given steps, interpolated linearly in time."""
    from scipy.interpolate import make_interp_spline

    hours, known = _given_steps(given)
    return make_interp_spline(hours, known, k=1, axis=0)(_hours(given, given.valid_times))[None]


@register("spline_in_time", kinds=("interpolation",))
def spline_in_time(given: BaselineInput) -> np.ndarray:
    """The truth at the product's given steps, interpolated by a cubic spline in time
    (not-a-knot)."""
    from scipy.interpolate import CubicSpline

    hours, known = _given_steps(given)
    return CubicSpline(hours, known, axis=0)(_hours(given, given.valid_times))[None]


@register("bilinear_in_space", kinds=("downscaling",))
def bilinear_in_space(given: BaselineInput) -> np.ndarray:
    """The product's coarse input interpolated bilinearly onto its points
    (`downscaling_baselines.py`)."""
    return _coarse(given).bilinear(given.valid_times)[None]


@register("regression_on_bilinear", kinds=("downscaling",))
def regression_on_bilinear(given: BaselineInput) -> np.ndarray:
    """Per grid point, the truth regressed on the bilinear value and the hour of day, fitted on
    the climatology's window."""
    coarse = _coarse(given)
    key = ("regression", given.attributes.get("input_store"), given.truth.key)
    if key not in given.memo:
        given.memo[key] = regression_fit(coarse, given.truth, given.climatology.window)
    features = regression_features(coarse.bilinear(given.valid_times), given.valid_times)
    return np.einsum("t...f,...f->t...", features, given.memo[key])[None]


def _coarse(given: BaselineInput) -> CoarseInput:
    name = given.truth.arrays.name
    return CoarseInput(given.attributes.get("input_store", ""), name, given.grid)


def _given_steps(given: BaselineInput) -> tuple[np.ndarray, np.ndarray]:
    """Hours after the init of the steps an interpolation copied from its input (its attribute
    `given_steps_hours`), and the truth there, (step, level, lat, lon)."""
    text = given.attributes.get("given_steps_hours", "")
    hours = np.array([float(h) for h in text.split(",") if h.strip()])
    if hours.size < 2:
        raise Unavailable("the product names fewer than two given steps (read it from NetCDF)")
    times = given.init[0] + (hours * 3600).astype("timedelta64[s]")
    return hours, given.truth.read(times)


def _hours(given: BaselineInput, times: np.ndarray) -> np.ndarray:
    return (times - given.init[0]) / np.timedelta64(1, "h")
