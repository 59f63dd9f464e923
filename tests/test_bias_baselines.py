"""The bias-correction baselines (ibicus) on hand-made biases with known answers, and on the real
ERA5 t2m sample with a bias that follows the diurnal cycle and the anomaly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from atmorep_core.errors import ConfigError
from atmorep_core.evaluation.bias_baselines import correct_bias
from atmorep_core.io.store import Store

RNG = np.random.default_rng(7)


def test_mean_bias_removes_a_constant_bias_per_point_exactly() -> None:
    offset = RNG.normal(0.0, 2.0, (3, 4))
    truth, later = RNG.normal(280.0, 5.0, (200, 3, 4)), RNG.normal(282.0, 5.0, (50, 3, 4))
    corrected = correct_bias("mean_bias", truth, truth + offset, later + offset, "t2m")
    np.testing.assert_allclose(corrected, later, atol=1e-9)


def test_quantile_mapping_undoes_a_monotone_stretch_that_a_mean_cannot() -> None:
    scale, offset = RNG.uniform(0.5, 1.5, (2, 3)), RNG.normal(0.0, 2.0, (2, 3))
    truth, later = RNG.normal(280.0, 4.0, (2000, 2, 3)), RNG.normal(280.0, 3.0, (100, 2, 3))
    stretched = (truth - 280.0) * scale + 280.0 + offset
    new = (later - 280.0) * scale + 280.0 + offset
    mapped = correct_bias("quantile_mapping", truth, stretched, new, "temperature")
    shifted = correct_bias("mean_bias", truth, stretched, new, "temperature")
    assert mapped.shape == (100, 2, 3)
    assert np.sqrt(np.mean((mapped - later) ** 2)) < 0.15  # empirical CDFs of 2000 values
    assert np.sqrt(np.mean((shifted - later) ** 2)) > 0.5  # the stretch remains


def test_on_the_real_t2m_sample_quantile_mapping_beats_the_mean_which_beats_nothing(
    t2m_store: Path,
) -> None:
    arrays = Store.open(t2m_store).field("t2m")
    truth = np.asarray(arrays.data[...], dtype=np.float64)[:, 0]  # (time, lat, lon)
    hours = arrays.times.astype("datetime64[h]").astype(np.int64) % 24
    train = arrays.times <= np.datetime64("2019-03-19T23")
    means = np.stack([truth[train & (hours == h)].mean(axis=0) for h in range(24)])
    diurnal = 0.7 * np.cos(2 * np.pi * (hours - 15) / 24)[:, None, None]
    biased = truth + 0.8 + diurnal + 0.4 * (truth - means[hours])
    new, later = biased[~train], truth[~train]
    rmse = {
        method: np.sqrt(np.mean((correct_bias(method, truth[train], biased[train], new, "t2m")
                                 - later) ** 2))
        for method in ("mean_bias", "quantile_mapping")
    }  # fmt: skip
    raw = np.sqrt(np.mean((new - later) ** 2))
    assert rmse["quantile_mapping"] < 0.8 * rmse["mean_bias"] < 0.8 * raw, (rmse, raw)


def test_precipitation_twice_too_wet_is_halved_and_never_negative() -> None:
    # Hourly totals in metres, about a third of the hours dry, as a store holds them.
    truth = RNG.gamma(0.6, 4e-4, (600, 2, 3)) * (RNG.uniform(size=(600, 2, 3)) > 0.35)
    later = RNG.gamma(0.6, 4e-4, (100, 2, 3)) * (RNG.uniform(size=(100, 2, 3)) > 0.35)
    scaled = correct_bias("mean_bias", truth, 2 * truth, 2 * later, "total_precip", 3600)
    np.testing.assert_allclose(scaled, later, rtol=1e-9, atol=1e-15)  # a ratio of means: exact
    mapped = correct_bias("quantile_mapping", truth, 2 * truth, 2 * later, "total_precip", 3600)
    assert mapped.min() >= 0.0
    assert np.mean(np.abs(mapped - later)) < 0.25 * np.mean(np.abs(2 * later - later))
    assert np.mean(mapped[later == 0] == 0) > 0.9  # dry hours stay dry


def test_unknown_methods_and_accumulated_fields_without_a_period_are_refused() -> None:
    values = np.zeros((10, 2, 2))
    with pytest.raises(ConfigError, match="known methods are mean_bias, quantile_mapping"):
        correct_bias("delta", values, values, values, "t2m")
    with pytest.raises(ConfigError, match="total_precip: an accumulated field needs its"):
        correct_bias("mean_bias", values, values, values, "total_precip")
