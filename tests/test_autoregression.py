"""The autoregression baseline of `atmorep evaluate`, on the real ERA5 t2m store: against a
per-point least-squares fit built by hand, and its skill against persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from atmorep_core.evaluation import baselines
from atmorep_core.evaluation.autoregression import LAGS_H, Autoregression
from atmorep_core.evaluation.baselines import BaselineInput
from atmorep_core.evaluation.climatology import Climatology, Window
from atmorep_core.evaluation.truth import TruthField, Unavailable, locate
from atmorep_core.io.store import Store

TRAINING = Window(np.datetime64("2019-03-01T00", "s"), np.datetime64("2019-03-19T23", "s"), "t")


@pytest.fixture(scope="module")
def truth(t2m_store: Path) -> TruthField:
    store = Store.open(t2m_store)
    return TruthField(store.field("t2m"), locate(store.grid, store.grid), [0])


def fitted(truth: TruthField, window: Window = TRAINING) -> Autoregression:
    return Autoregression(truth, Climatology(window).of(truth))


def test_each_point_matches_a_least_squares_fit_built_by_hand(truth: TruthField) -> None:
    data = np.asarray(truth.arrays.data[...], dtype=np.float64)[:, 0]  # (time, lat, lon)
    times = truth.times.astype("datetime64[h]").astype(np.int64)  # hours since 1970
    index = {int(t): i for i, t in enumerate(times)}
    window = (truth.times >= TRAINING.first) & (truth.times <= TRAINING.last)
    first, last = times[window][0], times[window][-1]
    init = np.datetime64("2019-03-22T05", "s")
    lead = 3
    model = fitted(truth)
    forecast = model.forecast(init, np.array([init + np.timedelta64(lead, "h")]))
    assert forecast.shape == (1, 1, 33, 49)
    for row, column in [(0, 0), (16, 24), (32, 48)]:
        series = data[:, row, column]
        design, target = [], []
        for t in range(first + max(LAGS_H), last - lead + 1):
            hour = 2 * np.pi * ((t + lead) % 24) / 24
            cycle = [np.sin(hour), np.cos(hour), np.sin(2 * hour), np.cos(2 * hour), 1.0]
            design.append([series[index[t - lag]] for lag in LAGS_H] + cycle)
            target.append(series[index[t + lead]])
        assert len(target) == 19 * 24 - 24 - lead
        solution = np.linalg.lstsq(np.array(design), np.array(target), rcond=None)[0]
        t = int(init.astype("datetime64[h]").astype(np.int64))
        hour = 2 * np.pi * ((t + lead) % 24) / 24
        cycle = [np.sin(hour), np.cos(hour), np.sin(2 * hour), np.cos(2 * hour), 1.0]
        expected = np.dot([series[index[t - lag]] for lag in LAGS_H] + cycle, solution)
        assert forecast[0, 0, row, column] == pytest.approx(expected, abs=1e-4)


def test_it_beats_persistence_on_days_it_was_not_fitted_on(
    truth: TruthField, t2m_store: Path
) -> None:
    model, climatology = fitted(truth), Climatology(TRAINING).of(truth)
    grid = Store.open(t2m_store).grid
    leads = np.array([1, 3, 6], dtype="timedelta64[h]")
    errors: dict[str, list[np.ndarray]] = {"autoregression": [], "persistence": []}
    for init in np.arange("2019-03-20T00", "2019-03-24T18", 5, dtype="datetime64[h]"):
        start = np.array([init], dtype="datetime64[s]")
        given = BaselineInput(truth, start, start + leads, climatology, model, grid)
        actual = truth.read(start + leads)[None]
        for name in errors:
            errors[name].append((getattr(baselines, name)(given) - actual) ** 2)
    rmse = {name: np.sqrt(np.mean(e, axis=(0, 1, 3, 4, 5))) for name, e in errors.items()}
    assert (rmse["autoregression"] < 0.8 * rmse["persistence"]).all(), rmse
    assert rmse["autoregression"][0] < rmse["autoregression"][2]  # harder further ahead


def test_it_is_unavailable_without_the_lags_or_a_window_long_enough(truth: TruthField) -> None:
    model = fitted(truth)
    start = np.datetime64("2019-03-01T10", "s")  # 24 h lag before the store's first time
    with pytest.raises(Unavailable, match="no truth"):
        model.forecast(start, np.array([start + np.timedelta64(1, "h")]))
    short = Window(np.datetime64("2019-03-01T00", "s"), np.datetime64("2019-03-02T10", "s"), "t")
    init = np.datetime64("2019-03-22T05", "s")
    with pytest.raises(Unavailable, match="holds 9 hourly series"):
        fitted(truth, short).forecast(init, np.array([init + np.timedelta64(2, "h")]))
