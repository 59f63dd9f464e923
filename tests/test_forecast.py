"""Forecast engine: tiling and stitching, identity and persistence models over the globe, and a
trained model's errors at tile borders, on the real ERA5 samples."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import torch

from atmorep_core.engine.engine import DomainField, ask
from atmorep_core.engine.statistics import nearest_month
from atmorep_core.engine.tiling import Stitcher, area_from_bounds, tile
from atmorep_core.engine.trained import load_trained
from atmorep_core.errors import ConfigError, MissingInputError
from atmorep_core.grid import LatLonGrid
from atmorep_core.io.store import Store
from atmorep_core.model.config import FieldModelConfig
from atmorep_core.model.io import FieldInput, FieldOutput
from atmorep_core.products.forecast import ForecastRequest, forecast
from atmorep_core.questions.strategies import IdentityStrategy

GLOBAL_3DEG = LatLonGrid(90.0, -3.0, 61, 0.0, 3.0, 120)
UK = LatLonGrid(58.0, -0.25, 33, -10.0, 0.25, 49)


# --- tiling and stitching -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grid", "bounds"),
    [
        (GLOBAL_3DEG, None),
        (GLOBAL_3DEG, (30.0, 150.0, -30.0, -150.0)),  # across the date line
        (GLOBAL_3DEG, (90.0, 0.0, 60.0, 357.0)),  # a polar cap
        (UK, None),
        (UK, (55.0, -5.0, 52.0, 0.0)),
    ],
)
def test_tiles_cut_from_a_field_stitch_back_to_it_exactly(
    grid: LatLonGrid, bounds: tuple[float, float, float, float] | None
) -> None:
    area = None if bounds is None else area_from_bounds(grid, bounds)
    tiling = tile(grid, (9, 15), area)
    field = np.random.default_rng(0).normal(size=(2, *grid.shape)).astype(np.float32)
    domain = field[:, tiling.domain_rows][..., tiling.domain_columns]
    stitcher = Stitcher(tiling, (2,))
    for lat, lon in tiling.positions:
        stitcher.add(domain[:, tiling.tile_rows(lat)][..., tiling.tile_columns(lon)], lat, lon)
    assert np.array_equal(stitcher.result(), domain)
    rows, columns = tiling.area_in_domain()
    product_grid = tiling.area_grid()
    expected_lons = grid.lons[tiling.domain_columns[columns]] % 360.0
    assert np.allclose(product_grid.lons % 360.0, expected_lons)
    assert np.allclose(product_grid.lats, grid.lats[tiling.domain_rows][rows])


def test_tiles_overlap_by_half_and_wrap_round_the_globe() -> None:
    tiling = tile(GLOBAL_3DEG, (20, 40))
    assert tiling.circle and tiling.domain_shape == (61, 120)
    assert np.diff(tiling.lon_starts).max() <= 20 and tiling.lon_starts[-1] + 40 > 120
    assert tiling.lat_starts[0] == 0 and tiling.lat_starts[-1] == 61 - 20  # no tile over a pole
    assert np.diff(tiling.lat_starts).max() <= 10


def test_an_area_is_named_in_degrees_and_bad_areas_are_refused() -> None:
    area = area_from_bounds(GLOBAL_3DEG, (30.0, 150.0, -30.0, -150.0))
    assert (area.row_start, area.rows, area.col_start, area.cols) == (20, 21, 50, 21)
    with pytest.raises(ConfigError, match="--area"):
        area_from_bounds(GLOBAL_3DEG, (-30.0, 0.0, 30.0, 10.0))
    with pytest.raises(ConfigError, match="no grid point"):
        area_from_bounds(UK, (40.0, 20.0, 30.0, 30.0))


# --- the engine with models whose answer is known -------------------------------------------------


def identity_model(inputs: Mapping[str, FieldInput]) -> dict[str, FieldOutput]:
    """Answers every target token with the token it was given, as 2 identical heads."""
    outputs = {}
    for name, field in inputs.items():
        flat = field.tokens.flatten(1, 4).flatten(2)  # (B, N, P)
        picked = torch.gather(flat, 1, field.target_index[..., None].expand(-1, -1, flat.shape[2]))
        outputs[name] = FieldOutput(picked[:, :, None].expand(-1, -1, 2, -1))  # (B, M, 2, P)
    return outputs


def persistence_model(inputs: Mapping[str, FieldInput]) -> dict[str, FieldOutput]:
    """Answers the hidden last time tokens with the last given time step, everywhere."""
    outputs = {}
    for name, field in inputs.items():
        b, levels, n_t, n_y, n_x, t, y, x = field.tokens.shape
        k = field.target_index.shape[1] // (levels * n_y * n_x)
        last = field.tokens[:, :, n_t - k - 1, :, :, -1:]  # (B, L, n_y, n_x, 1, y, x)
        repeated = last[:, :, None].expand(b, levels, k, n_y, n_x, t, y, x)
        outputs[name] = FieldOutput(repeated.reshape(b, -1, 1, t * y * x))  # (B, M, 1, P)
    return outputs


@pytest.mark.parametrize("bounds", [None, (30.0, 150.0, -30.0, -150.0)])
def test_an_identity_model_gives_back_the_field_over_the_globe(
    bounds: tuple[float, float, float, float] | None,
) -> None:
    config = FieldModelConfig(
        name="t", levels=(500, 850), token_count=(2, 4, 8), token_size=(1, 5, 5), embed_dim=8,
        num_heads=2,
    )  # fmt: skip
    area = None if bounds is None else area_from_bounds(GLOBAL_3DEG, bounds)
    tiling = tile(GLOBAL_3DEG, (20, 40), area)
    values = np.random.default_rng(1).normal(size=(2, 2, *tiling.domain_shape)).astype(np.float32)
    times = np.array(["2017-01-01T00", "2017-01-01T12"], dtype="datetime64[s]")
    answers = ask(
        identity_model, {"t": DomainField(config, values)}, times, tiling, IdentityStrategy(),
        [None, 1], batch_size=7,
    )  # fmt: skip
    for answer in answers:
        assert np.array_equal(answer["t"], values)


@pytest.mark.parametrize("bounds", [None, (30.0, 150.0, -30.0, -150.0)])
def test_a_persistence_model_forecasts_the_init_field_through_iterations(
    global_store: Path, global_run: Path, bounds: tuple[float, float, float, float] | None
) -> None:
    trained = load_trained(global_run)
    store = Store.open(global_store)
    request = ForecastRequest(datetime(2017, 1, 2, 0), lead_hours=24, area=bounds)
    product = forecast(trained, store, store, request, predictor=persistence_model)
    assert product.steps_hours == (12, 24)  # two iterations of one 12-hourly step
    for field in product.fields:
        arrays = store.field(field.name)
        at_init = arrays.data[2]  # (level, lat, lon) on 2017-01-02T00
        area = field.grid
        rows = np.flatnonzero(np.isin(GLOBAL_3DEG.lats, area.lats))
        columns = np.round((area.lons % 360.0) / 3.0).astype(int)
        expected = at_init[:, rows][..., columns]
        assert field.values.shape == (1, 2, 2, len(rows), len(columns))
        for step in range(2):
            np.testing.assert_allclose(field.values[0, step], expected, rtol=2e-6)
    if bounds is not None:
        assert product.fields[0].grid.lon_first == 150.0 and product.fields[0].grid.nlon == 21


def test_a_missing_input_time_is_named(global_store: Path, global_run: Path) -> None:
    trained = load_trained(global_run)
    store = Store.open(global_store)
    request = ForecastRequest(datetime(2017, 1, 3, 12), lead_hours=12)
    with pytest.raises(MissingInputError, match="2017-01-03T00:00, 2017-01-03T12:00"):
        forecast(trained, store, store, request)


def test_members_follow_different_heads_and_repeat_under_a_seed(
    global_store: Path, global_run: Path
) -> None:
    trained, store = load_trained(global_run), Store.open(global_store)
    request = ForecastRequest(datetime(2017, 1, 2, 12), lead_hours=24, members=3, seed=5)
    first = forecast(trained, store, store, request)
    again = forecast(trained, store, store, request)
    values = first.field_named("temperature").values  # (member, step, level, lat, lon)
    assert np.array_equal(values, again.field_named("temperature").values)
    assert values.shape == (3, 2, 2, 61, 120) and np.all(np.isfinite(values))
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert not np.allclose(values[a, 0], values[b, 0])


def test_statistics_of_a_month_the_store_lacks_come_from_the_nearest_same_month() -> None:
    months = np.array([201901, 201902, 201912, 202001])
    assert nearest_month(months, 201902) == 201902
    assert nearest_month(months, 202102) == 201902
    assert nearest_month(months, 202012) == 201912
    assert nearest_month(months, 202005) == 202001  # no May: the nearest month


# --- a trained model ------------------------------------------------------------------------------


def test_a_trained_model_is_no_worse_at_tile_borders_than_inside_tiles(
    t2m_store: Path, t2m_run: Path
) -> None:
    trained, store = load_trained(t2m_run), Store.open(t2m_store)
    truth = store.field("t2m")
    inits = [datetime(2019, 3, day, hour) for day in range(20, 25) for hour in (3, 11, 19)]
    errors = []
    for init in inits:
        product = forecast(trained, store, store, ForecastRequest(init, lead_hours=3))
        at = np.flatnonzero(truth.times == np.datetime64(init + timedelta(hours=3)))[0]
        errors.append(product.fields[0].values[0, -1, 0] - truth.data[at, 0])  # 3 h lead
    squared = np.stack(errors) ** 2  # (init, lat, lon)
    tiling = tile(store.grid, trained.extent[1:])
    border = np.zeros(store.grid.shape, dtype=bool)
    for lat, lon in tiling.positions:
        rows, cols = tiling.tile_rows(lat), tiling.tile_columns(lon)
        border[[rows.start, rows.stop - 1], cols[0] : cols[-1] + 1] = True
        border[rows, [cols[0], cols[-1]]] = True
    border[[0, -1], :] = border[:, [0, -1]] = False  # the grid's own edges are no tile border
    inside = ~border
    inside[[0, -1], :] = inside[:, [0, -1]] = False
    rmse_border = float(np.sqrt(squared[:, border].mean()))
    rmse_inside = float(np.sqrt(squared[:, inside].mean()))
    assert border.sum() > 100 and inside.sum() > 100
    assert rmse_border <= 1.1 * rmse_inside, (rmse_border, rmse_inside)
    persistence = [
        truth.data[np.flatnonzero(truth.times == np.datetime64(i + timedelta(hours=3)))[0], 0]
        - truth.data[np.flatnonzero(truth.times == np.datetime64(i))[0], 0]
        for i in inits
    ]
    assert np.sqrt(squared.mean()) < np.sqrt(np.mean(np.square(persistence)))  # it learned
