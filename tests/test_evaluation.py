"""`atmorep evaluate`: scores against independent implementations, baselines on the real ERA5
t2m store, and the command end to end on products that `atmorep forecast` made."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scoringrules as sr
import xarray as xr
import xskillscore as xs

from atmorep_core.errors import ConfigError, InputDataError, MissingInputError, StoreError
from atmorep_core.evaluation import baselines, metrics
from atmorep_core.evaluation.autoregression import Autoregression
from atmorep_core.evaluation.baselines import BaselineInput, baselines_for
from atmorep_core.evaluation.climatology import Climatology, Window
from atmorep_core.evaluation.job import EvaluateJob, run_evaluation_job
from atmorep_core.evaluation.truth import TruthField, locate
from atmorep_core.grid import LatLonGrid
from atmorep_core.io.grib_products import write_grib
from atmorep_core.io.netcdf import write_netcdf
from atmorep_core.io.product import Product, ProductField
from atmorep_core.io.product_read import read_product
from atmorep_core.io.store import Store
from tests.conftest import T2M
from tests.helpers import run_cli, shared_file
from tests.test_forecast_cli import forecast_cli

RNG = np.random.default_rng(2024)
LATS = np.linspace(60.0, -30.0, 7)  # cos(lat) weights from 0.5 to 1


def field_pair(shape: tuple[int, ...] = (3, 7, 9)) -> tuple[xr.DataArray, xr.DataArray]:
    dims = ("step", "lat", "lon")
    coords = {"lat": LATS}
    forecast = xr.DataArray(RNG.normal(280, 3, shape), dims=dims, coords=coords)
    truth = xr.DataArray(RNG.normal(280, 3, shape), dims=dims, coords=coords)
    return forecast, truth


def xs_weights() -> xr.DataArray:
    cos = xr.DataArray(np.cos(np.deg2rad(LATS)), dims="lat", coords={"lat": LATS})
    return cos.broadcast_like(xr.DataArray(np.zeros((7, 9)), dims=("lat", "lon")))


# --- metrics against independent implementations ---------------------------------------------


def test_rmse_and_bias_match_xskillscore_with_cos_latitude_weights() -> None:
    forecast, truth = field_pair()
    weights = metrics.latitude_weights(LATS)
    ours = metrics.rmse(forecast.values, truth.values, weights)
    theirs = xs.rmse(forecast, truth, dim=["lat", "lon"], weights=xs_weights())
    np.testing.assert_allclose(ours, theirs.values, rtol=1e-12)
    bias = metrics.bias(forecast.values, truth.values, weights)
    np.testing.assert_allclose(bias, xs.me(forecast, truth, ["lat", "lon"], xs_weights()), 1e-10)
    unweighted = np.sqrt(((forecast - truth) ** 2).mean(("lat", "lon")))
    assert not np.allclose(ours, unweighted.values)  # the weights matter on these latitudes


def test_anomaly_correlation_is_weighted_pearson_of_centred_anomalies_and_plus_minus_one() -> None:
    forecast, truth = field_pair()
    climatology = RNG.normal(280, 3, (3, 7, 9))
    weights = metrics.latitude_weights(LATS)
    # Anomalies with zero weighted mean: the uncentred ACC is then Pearson's correlation.
    f, o = forecast - climatology, truth - climatology
    f -= metrics.spatial_mean(f.values, weights)[:, None, None]
    o -= metrics.spatial_mean(o.values, weights)[:, None, None]
    acc = metrics.anomaly_correlation(
        f.values + climatology, o.values + climatology, climatology, weights
    )
    pearson = xs.pearson_r(f, o, dim=["lat", "lon"], weights=xs_weights())
    np.testing.assert_allclose(acc, pearson.values, rtol=1e-10)
    same = metrics.anomaly_correlation(
        climatology + 2 * o.values, o.values + climatology, climatology, weights
    )
    opposite = metrics.anomaly_correlation(
        climatology - o.values, o.values + climatology, climatology, weights
    )
    np.testing.assert_allclose(same, 1.0)
    np.testing.assert_allclose(opposite, -1.0)
    assert np.isnan(
        metrics.anomaly_correlation(climatology, truth.values, climatology, weights)
    ).all()


def test_fair_crps_matches_scoringrules_and_the_pairwise_definition() -> None:
    members = RNG.normal(0.0, 2.0, (6, 4, 5))  # (member, ...)
    truth = RNG.normal(0.5, 2.0, (4, 5))
    ours = metrics.crps_ensemble(members, truth)
    library = sr.crps_ensemble(truth, np.moveaxis(members, 0, -1), estimator="fair")
    np.testing.assert_allclose(ours, library, rtol=1e-12)
    m = members.shape[0]
    skill = np.abs(members - truth).mean(axis=0)
    pairs = np.abs(members[:, None] - members[None, :]).sum(axis=(0, 1))
    np.testing.assert_allclose(ours, skill - pairs / (2 * m * (m - 1)), rtol=1e-12)
    np.testing.assert_allclose(
        metrics.crps_ensemble(members[:1], truth), np.abs(members[0] - truth)
    )


def test_gaussian_crps_matches_scoringrules_xskillscore_and_closed_form() -> None:
    mean, std, truth = RNG.normal(size=50), RNG.uniform(0.1, 3.0, 50), RNG.normal(size=50)
    ours = metrics.crps_gaussian(mean, std, truth)
    np.testing.assert_allclose(ours, sr.crps_normal(truth, mean, std), rtol=1e-10)
    as_xr = [xr.DataArray(v, dims="point") for v in (truth, mean, std)]
    np.testing.assert_allclose(ours, xs.crps_gaussian(*as_xr, dim=[]).values, rtol=1e-10)
    # N(0, 1) at its mean: 2 phi(0) - 1 / sqrt(pi) = (sqrt(2) - 1) / sqrt(pi).
    assert metrics.crps_gaussian(np.array(0.0), np.array(1.0), np.array(0.0)) == pytest.approx(
        (np.sqrt(2) - 1) / np.sqrt(np.pi), rel=1e-12
    )
    assert metrics.crps_gaussian(np.array(1.0), np.array(0.0), np.array(3.5)) == 2.5


def test_rank_histogram_matches_xskillscore() -> None:
    members = RNG.normal(size=(5, 30, 40))
    truth = RNG.normal(0.3, 1.2, (30, 40))
    ours = metrics.rank_histogram(members, truth)
    forecasts = xr.DataArray(np.moveaxis(members, 0, -1), dims=("y", "x", "member"))
    theirs = xs.rank_histogram(xr.DataArray(truth, dims=("y", "x")), forecasts, dim=["y", "x"])
    np.testing.assert_array_equal(ours, theirs.values)
    tied = metrics.rank_histogram(np.zeros((3, 4000)), np.zeros(4000))  # ties split evenly
    assert tied.sum() == 4000 and tied.min() > 900


def test_spread_skill_of_a_reliable_ensemble_is_one_with_the_finite_ensemble_factor() -> None:
    signal = RNG.normal(0, 5, (100, 200))
    members = signal + RNG.normal(size=(4, 100, 200))  # truth and members: one distribution
    truth = signal + RNG.normal(size=(100, 200))
    weights = metrics.latitude_weights(np.linspace(-60, 60, 100))
    ratio = metrics.spread_skill_ratio(members, truth, weights)
    assert ratio == pytest.approx(1.0, abs=0.02)
    raw = ratio / np.sqrt(metrics.finite_ensemble_factor(4))
    assert raw == pytest.approx(np.sqrt(4 / 5), abs=0.02)  # what the factor corrects
    assert metrics.spread_skill_ratio(members * 0.5 + signal * 0.5, truth, weights) < 0.6


# --- baselines on the real t2m store ---------------------------------------------------------


def test_baselines_on_the_real_t2m_store(t2m_store: Path) -> None:
    store = Store.open(t2m_store)
    arrays = store.field("t2m")
    truth = TruthField(arrays, locate(store.grid, store.grid), [0])
    init = np.array(["2019-03-22T12"], dtype="datetime64[s]")
    valid = init + np.array([1, 6], dtype="timedelta64[h]")
    window = Window(np.datetime64("2019-03-01T00", "s"), np.datetime64("2019-03-19T23", "s"), "t")
    hourly = Climatology(window).of(truth)
    given = BaselineInput(truth, init, valid, hourly, Autoregression(truth, hourly), store.grid)
    data = np.asarray(arrays.data[...])[:, 0]  # (time, lat, lon) as the store holds it
    at = {t: int(np.flatnonzero(arrays.times == t)[0]) for t in (init[0], *valid)}
    persistence = baselines.persistence(given)  # (1, step, level, lat, lon)
    assert persistence.shape == (1, 2, 1, 33, 49)
    np.testing.assert_array_equal(persistence[0, :, 0], [data[at[init[0]]]] * 2)
    climatology = baselines.climatology(given)
    hours = arrays.times.astype("datetime64[h]").astype(int) % 24
    days = (arrays.times >= window.first) & (arrays.times <= window.last)
    for step, hour in enumerate((13, 18)):
        expected = data[days & (hours == hour)].astype(np.float64).mean(axis=0)
        np.testing.assert_allclose(climatology[0, step, 0], expected, rtol=1e-12)
    assert [b.name for b in baselines_for("forecast")] == [
        "persistence",
        "autoregression",
        "climatology",
    ]
    interpolation = ["climatology", "linear_in_time", "spline_in_time"]
    assert [b.name for b in baselines_for("interpolation")] == interpolation


# --- products read back --------------------------------------------------------------------


def test_read_product_gives_back_what_the_netcdf_and_grib_writers_wrote(tmp_path: Path) -> None:
    grid = LatLonGrid(60.0, -1.5, 5, 350.0, 1.5, 8)  # across Greenwich
    values = RNG.normal(250.0, 10.0, (3, 2, 2, 5, 8))  # (member, step, level, lat, lon)
    surface = RNG.normal(280.0, 5.0, (3, 2, 1, 5, 8))
    fields = (
        ProductField("temperature", "hybrid", (96, 137), grid, values),
        ProductField("t2m", "surface", (0,), grid, surface),
    )
    product = Product(datetime(2020, 2, 1, 6), (3, 6), fields, attributes={"checkpoint": "run"})
    write_netcdf(product, tmp_path / "p.nc")
    write_grib(product, tmp_path / "p.grib2", statistics=True)
    from_netcdf, from_grib = read_product(tmp_path / "p.nc"), read_product(tmp_path / "p.grib2")
    assert from_netcdf.attributes == {"checkpoint": "run"} and from_grib.attributes == {}
    for back in (from_netcdf, from_grib):
        assert (back.init, back.steps_hours, back.members) == (product.init, (3, 6), 3)
        temperature = back.field_named("temperature")
        assert temperature.levels == (96, 137) and temperature.grid.matches(grid)
        np.testing.assert_allclose(temperature.values, values.astype(np.float32), atol=0.01)
        np.testing.assert_allclose(
            back.field_named("t2m").values, surface.astype(np.float32), atol=0.01
        )
    assert from_grib.field_named("t2m").level_type == "heightAboveGround"
    np.testing.assert_array_equal(from_netcdf.fields[0].values, values.astype(np.float32))


# --- evaluate on hand-made products (the truth itself, persistence) --------------------------


def truth_product(
    store_path: Path, init: datetime, steps: tuple[int, ...], at_init: bool
) -> Product:
    """A sub-area product (longitudes shifted by 360) holding the truth, or the truth at init."""
    store = Store.open(store_path)
    arrays, grid = store.field("t2m"), store.grid
    rows, cols = slice(5, 20), slice(10, 30)
    times = [init] * len(steps) if at_init else [init + timedelta(hours=h) for h in steps]
    index = [int(np.flatnonzero(arrays.times == np.datetime64(t))[0]) for t in times]
    values = np.asarray(arrays.data[...])[index][None, :, :, rows, cols]  # (1, step, 1, r, c)
    area = LatLonGrid(grid.lats[5], grid.lat_step, 15, grid.lons[10] + 360.0, grid.lon_step, 20)
    return Product(init, steps, (ProductField("t2m", "surface", (0,), area, values),))


def evaluated(tmp_path: Path, store: Path, *products: Product) -> dict[str, Any]:
    paths = []
    for i, product in enumerate(products):
        paths.append(str(tmp_path / f"product_{i}.nc"))
        write_netcdf(product, paths[-1])
    return run_evaluation_job(EvaluateJob(tuple(paths), (store,)))


def rows_of(result: dict[str, Any], source: str) -> dict[int, dict[str, Any]]:
    return {r["lead_h"]: r for r in result["scores"] if r["source"] == source}


def test_the_truth_scores_perfectly_and_persistence_scores_as_persistence(
    tmp_path: Path, t2m_store: Path
) -> None:
    init, steps = datetime(2019, 3, 22, 12), (1, 3, 6)
    perfect = evaluated(tmp_path / "a", t2m_store, truth_product(t2m_store, init, steps, False))
    for row in rows_of(perfect, "model").values():
        assert row["rmse"] == 0 and row["crps"] == 0 and row["bias"] == 0
        assert row["acc"] == pytest.approx(1.0) and row["spread"] is None
    assert perfect["climatology"]["source"] == "before the first init"
    persistent = evaluated(tmp_path / "b", t2m_store, truth_product(t2m_store, init, steps, True))
    model, persistence = rows_of(persistent, "model"), rows_of(persistent, "persistence")
    for lead in steps:
        for score in ("rmse", "bias", "crps", "crps_gaussian", "acc"):
            assert model[lead][score] == pytest.approx(persistence[lead][score], rel=1e-9)
    assert persistence[1]["rmse"] < persistence[6]["rmse"]  # t2m changes over 6 h


def test_leads_without_truth_are_skipped_with_a_note_and_none_at_all_is_an_error(
    tmp_path: Path, t2m_store: Path
) -> None:
    late = truth_product(t2m_store, datetime(2019, 3, 24, 21), (1, 2), False)
    past = Product(late.init, (1, 2, 3, 4), (_padded(late.fields[0], 4),))
    result = evaluated(tmp_path / "a", t2m_store, past)
    assert sorted(rows_of(result, "model")) == [1, 2]
    assert any("no truth for t2m at leads 3, 4 h" in note for note in result["notes"])
    beyond = Product(datetime(2019, 3, 25, 6), (1, 2), late.fields)
    with pytest.raises(MissingInputError, match="nothing could be scored"):
        evaluated(tmp_path / "b", t2m_store, beyond)


def _padded(product_field: ProductField, steps: int) -> ProductField:
    values = np.concatenate([product_field.values] * (steps // 2), axis=1)
    return ProductField("t2m", "surface", (0,), product_field.grid, values)


# --- the command end to end on forecasts -----------------------------------------------------


@pytest.fixture(scope="module")
def forecasts(tmp_path_factory: pytest.TempPathFactory, t2m_run: Path) -> Path:
    folder = tmp_path_factory.mktemp("forecasts")
    for init in ("2019-03-22T12", "2019-03-22T15"):
        forecast_cli(t2m_run, folder, "--members", "4", init=init)
    return folder


def test_evaluate_writes_json_csv_and_plots_of_real_forecasts(
    tmp_path: Path, forecasts: Path, t2m_store: Path
) -> None:
    out = tmp_path / "scores"
    result = run_cli(
        "evaluate", str(forecasts / "forecast_*"), "--truth", str(t2m_store), "--out", str(out),
        "--map-lead", "1h", "--map-lead", "6h", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert len(scores["products"]) == 2 and all(p.endswith(".nc") for p in scores["products"])
    model = rows_of(scores, "model")
    assert sorted(model) == [1, 2, 3, 4, 5, 6] and model[6]["inits"] == 2
    assert {r["source"] for r in scores["scores"]} == {
        "model",
        "persistence",
        "autoregression",
        "climatology",
    }
    _check_against_independent_scores(scores, forecasts, t2m_store)
    assert model[6]["rmse"] < rows_of(scores, "climatology")[6]["rmse"]
    assert 0 < model[6]["spread_skill"] < 3 and model[6]["members"] == 4
    ranks = next(r for r in scores["rank_histograms"] if r["lead_h"] == 6)
    assert len(ranks["counts"]) == 5 and sum(ranks["counts"]) == 2 * 33 * 49
    with open(out / "scores.csv") as file:
        table = list(csv.DictReader(file))
    assert len(table) == 24 and float(table[0]["rmse"]) == pytest.approx(
        scores["scores"][0]["rmse"]
    )
    written = json.loads((out / "scores.json").read_text())
    # Level 2: the NetCDF product's 2 m above ground, as its GRIB2 has it.
    assert sorted(written["outputs"]) == sorted(
        ["scores.csv", "plots/scores_t2m_2.png", "plots/error_t2m_2_001h.png",
         "plots/error_t2m_2_006h.png", "plots/ranks_t2m_2_4m.png"]
    )  # fmt: skip
    assert all(
        (out / name).stat().st_size > 10_000 for name in written["outputs"] if ".png" in name
    )


def _check_against_independent_scores(scores: dict[str, Any], forecasts: Path, store: Path) -> None:
    """Model and persistence RMSE at 6 h, recomputed with xskillscore from the files."""
    truth = Store.open(store).field("t2m")
    weights = xr.DataArray(np.cos(np.deg2rad(Store.open(store).grid.lats)), dims="latitude")
    model, persistence = [], []
    for init in ("2019-03-22T12", "2019-03-22T15"):
        stamp = init.replace("-", "") + "00"
        with xr.open_dataset(forecasts / f"forecast_{stamp}.nc") as product:
            mean = product["t2m_mean"].isel(time=-1).values
        valid, start = (np.datetime64(init) + np.timedelta64(h, "h") for h in (6, 0))
        observed = truth.data[int(np.flatnonzero(truth.times == valid)[0]), 0]
        initial = truth.data[int(np.flatnonzero(truth.times == start)[0]), 0]
        as_xr = [xr.DataArray(v, dims=("latitude", "longitude")) for v in (mean, observed, initial)]
        model.append(float(xs.mse(as_xr[0], as_xr[1], weights=weights.broadcast_like(as_xr[0]))))
        persistence.append(
            float(xs.mse(as_xr[2], as_xr[1], weights=weights.broadcast_like(as_xr[0])))
        )
    assert rows_of(scores, "model")[6]["rmse"] == pytest.approx(np.sqrt(np.mean(model)), rel=1e-5)
    expected = np.sqrt(np.mean(persistence))
    assert rows_of(scores, "persistence")[6]["rmse"] == pytest.approx(expected, rel=1e-6)


def test_grib_products_against_grib_truth_score_as_netcdf_against_the_store(
    tmp_path: Path, forecasts: Path, t2m_store: Path
) -> None:
    result = run_cli(
        "evaluate", str(forecasts / "*.grib2"), "--truth", str(shared_file(T2M)), "--json"
    )
    assert result.returncode == 0, result.stderr
    from_grib = rows_of(json.loads(result.stdout), "model")
    paths = tuple(str(p) for p in sorted(forecasts.glob("*.nc")))
    from_netcdf = rows_of(run_evaluation_job(EvaluateJob(paths, (t2m_store,))), "model")
    for lead in (1, 6):
        assert from_grib[lead]["rmse"] == pytest.approx(from_netcdf[lead]["rmse"], abs=5e-3)
        assert from_grib[lead]["crps"] == pytest.approx(from_netcdf[lead]["crps"], abs=5e-3)


def test_a_bad_truth_is_a_one_line_error(tmp_path: Path, forecasts: Path) -> None:
    product = str(next(forecasts.glob("*.nc")))
    result = run_cli("evaluate", product, "--truth", str(tmp_path / "missing.zarr"))
    assert result.returncode == 4 and len(result.stderr.strip().splitlines()) == 1
    assert "missing.zarr: no such store or GRIB file" in result.stderr
    not_grib = tmp_path / "truth.grib"
    not_grib.write_text("not a GRIB file")
    with pytest.raises(InputDataError, match=r"truth\.grib: unreadable GRIB"):
        run_evaluation_job(EvaluateJob((product,), (not_grib,)))
    with pytest.raises(StoreError, match="not an atmorep store"):
        run_evaluation_job(EvaluateJob((product,), (tmp_path,)))
    with pytest.raises(ConfigError, match="no NetCDF or GRIB product matches"):
        run_evaluation_job(EvaluateJob((str(tmp_path / "none_*.nc"),), (not_grib,)))
