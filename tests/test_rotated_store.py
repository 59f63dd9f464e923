"""Stores on rotated-pole grids: COSMO-D2 as DWD publishes COSMO-REA6 (bz2 GRIB per variable and
month), prepared, sampled with geographic alpha, trained on, forecast and downscaled onto (from
lat-lon input) with products on its rotated grid, scored there, and refused where not supported.

References are eccodes' own values, latitudes and longitudes of the real COSMO-D2 file.
"""

from __future__ import annotations

import bz2
import json
import shutil
from datetime import datetime
from pathlib import Path

import eccodes
import numpy as np
import pytest
import torch

from atmorep_core.data.sampler import FieldConfig, NeighbourhoodSampler, SamplerConfig
from atmorep_core.engine.engine import DomainField, _field_input
from atmorep_core.engine.tiling import area_from_bounds, tile
from atmorep_core.errors import StoreError
from atmorep_core.grid import LatLonGrid, grid_position
from atmorep_core.io.grib_products import write_grib
from atmorep_core.io.netcdf import product_dataset
from atmorep_core.io.product import Product, ProductField
from atmorep_core.io.store import Store
from atmorep_core.model.config import FieldModelConfig
from atmorep_core.questions.strategies import IdentityStrategy
from atmorep_core.rotated_grid import RotatedGrid, from_grib
from tests.conftest import train_briefly
from tests.helpers import (
    grib_messages,
    read_grib,
    run_cli,
    shared_file,
    store_fingerprint,
    write_messages,
)

COSMO_D2 = "regional/cosmo-d2-t2m-rotated-20180808T18-step6.grib2"  # 716 x 651, pole -40 / 10
NAE = "regional/ukmo-nae-t1000-rotated-20090507T00.grib2"  # 360 x 600, pole -37.5 / 332.467
DWD_NAME = "T_2M.2D.201808.grb.bz2"  # COSMO-REA6's open-data layout: <VAR>.2D.<YYYYMM>.grb.bz2


def compress(source: Path, target: Path) -> Path:
    target.write_bytes(bz2.compress(source.read_bytes()))
    return target


def prepare_cli(*args: str) -> list[dict[str, object]]:
    result = run_cli("prepare", *args, "--json")
    assert result.returncode == 0, result.stderr
    reports: list[dict[str, object]] = json.loads(result.stdout)
    return reports


def fails(code: int, *args: str) -> str:
    """The one error line of a command that must fail with `code`."""
    result = run_cli(*args)
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def cosmo() -> dict[str, object]:
    """eccodes' reading of the original file: values, latitudes, longitudes."""
    (message,) = read_grib(shared_file(COSMO_D2), ("gridType",))
    return message


@pytest.fixture(scope="module")
def dwd_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The COSMO-D2 file compressed as DWD names COSMO-REA6's files, prepared by the CLI."""
    folder = tmp_path_factory.mktemp("rea6")
    packed = compress(shared_file(COSMO_D2), folder / DWD_NAME)
    (report,) = prepare_cli(str(folder / "T_2M.2D.*.grb.bz2"), "--store", str(folder / "s.zarr"))
    assert report["status"] == "ingested" and report["path"] == str(packed)
    return folder / "s.zarr"


def test_bz2_file_is_prepared_on_its_rotated_grid(
    dwd_store: Path, cosmo: dict[str, np.ndarray]
) -> None:
    store = Store.open(dwd_store)
    original = from_grib(shared_file(COSMO_D2))
    grid = store.grid
    assert grid.south_pole == (-40.0, 10.0) == (original.south_pole_lat, original.south_pole_lon)
    assert grid.shape == original.shape == (716, 651)
    np.testing.assert_allclose(grid.lat_axis, original.rlats, rtol=0, atol=1e-9)
    np.testing.assert_allclose(grid.lon_axis, original.rlons, rtol=0, atol=1e-9)
    np.testing.assert_allclose(store.root["lat"][...], original.rlats, rtol=0, atol=1e-9)
    assert grid.rotated() == original
    values = store.field("t2m").data[0, 0]
    np.testing.assert_array_equal(values, cosmo["values"].astype(np.float32))
    assert 270.0 < float(values.min()) < float(values.max()) < 310.0  # an August night, in K
    (source,) = store.sources
    assert source["file"] == DWD_NAME
    # Nothing but the compressed file, the store and its lock: the plain copy is gone.
    assert sorted(p.name for p in dwd_store.parent.iterdir()) == [DWD_NAME, "s.zarr", "s.zarr.lock"]


def test_rerunning_prepare_on_the_bz2_file_is_a_no_op(dwd_store: Path) -> None:
    before = store_fingerprint(dwd_store)
    (report,) = prepare_cli(str(dwd_store.parent / DWD_NAME), "--store", str(dwd_store))
    assert report["status"] == "skipped"
    assert json.dumps(before["attrs"]) == json.dumps(store_fingerprint(dwd_store)["attrs"])
    np.testing.assert_array_equal(before["t2m/data"], store_fingerprint(dwd_store)["t2m/data"])


def test_info_shows_the_rotated_grid(dwd_store: Path) -> None:
    result = run_cli("info", str(dwd_store), "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["grid"]["type"] == "rotated_ll" and info["grid"]["south_pole"] == [-40.0, 10.0]
    assert "rotated pole 716 x 651 points" in info["grid_description"]
    extent = info["geographic_extent"]  # COSMO-D2's Germany
    assert 43.0 < extent["south"] < 43.3 and 57.9 < extent["north"] < 58.1
    assert -3.9 < extent["west"] < -3.8 and 20.2 < extent["east"] < 20.3


@pytest.mark.parametrize("start", [(0, 0), (300, 250), (707 - 27, 651 - 36)])
def test_sampler_alpha_holds_geographic_token_centres(
    dwd_store: Path, cosmo: dict[str, np.ndarray], start: tuple[int, int]
) -> None:
    field = FieldConfig(
        name="t2m", token_count=(1, 3, 4), token_size=(1, 9, 9), normalisation="global"
    )
    sampler = NeighbourhoodSampler(Store.open(dwd_store), SamplerConfig(fields=(field,)))
    alpha = sampler.read(0, *start).alpha["t2m"].numpy()  # (level, n_t, 3, 4, 7)
    rows = start[0] + 4 + 9 * np.arange(3)  # each 9 x 9 token's centre point
    columns = start[1] + 4 + 9 * np.arange(4)
    lats = cosmo["lats"][np.ix_(rows, columns)]
    lons = cosmo["lons"][np.ix_(rows, columns)]
    np.testing.assert_allclose(alpha[0, 0, :, :, 4], lats, rtol=0, atol=1e-3)
    lon_error = (alpha[0, 0, :, :, 5] - lons + 180.0) % 360.0 - 180.0
    assert np.abs(lon_error).max() < 1e-3
    assert alpha[0, 0, 0, 0, 6] == pytest.approx(0.02)  # resolution


def test_another_rotated_grid_is_refused_and_the_store_kept(dwd_store: Path) -> None:
    before = store_fingerprint(dwd_store)
    nae = shared_file(NAE)
    line = fails(4, "prepare", str(nae), "--store", str(dwd_store))
    assert nae.name in line and "does not match the store's grid" in line
    assert "360 x 600 points" in line and "southern -37.5 / -27.533" in line  # the file's
    assert "716 x 651 points" in line and "southern -40 / 10" in line  # the store's
    after = store_fingerprint(dwd_store)
    assert sorted(before) == sorted(after)
    assert all(str(before[key]) == str(after[key]) for key in before)


def test_gaussian_input_is_not_regridded_onto_a_rotated_store(dwd_store: Path) -> None:
    before = store_fingerprint(dwd_store)
    gaussian = shared_file("ifs/ifs-fc-t-ml-n80-20180405T12-step12.grib")
    line = fails(4, "prepare", str(gaussian), "--store", str(dwd_store))
    assert "regular Gaussian N80, 160 x 320 points" in line and "southern -40 / 10" in line
    assert str(before["attrs"]) == str(store_fingerprint(dwd_store)["attrs"])


def test_a_corrupt_bz2_file_gives_one_line_and_writes_nothing(tmp_path: Path) -> None:
    whole = bz2.compress(shared_file(COSMO_D2).read_bytes())
    truncated = tmp_path / DWD_NAME
    truncated.write_bytes(whole[: len(whole) // 2])
    line = fails(3, "prepare", str(truncated), "--store", str(tmp_path / "new.zarr"))
    assert str(truncated) in line and "not a readable bz2 file" in line
    not_bz2 = tmp_path / "T_2M.2D.201809.grb.bz2"
    shutil.copy(shared_file(COSMO_D2), not_bz2)  # plain GRIB under a bz2 name
    line = fails(3, "prepare", str(not_bz2), "--store", str(tmp_path / "new.zarr"))
    assert str(not_bz2) in line and "not a readable bz2 file" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == [DWD_NAME, not_bz2.name, "new.zarr.lock"]


def test_rotated_store_grid_is_written_as_a_rotated_product(
    dwd_store: Path, cosmo: dict[str, np.ndarray], tmp_path: Path
) -> None:
    grid = Store.open(dwd_store).grid
    values = np.asarray(cosmo["values"], np.float32)[None, None, None]  # (member, step, level, ..)
    field = ProductField("t2m", "heightAboveGround", (2,), grid, values)
    assert isinstance(field.grid, RotatedGrid) and field.grid == from_grib(shared_file(COSMO_D2))
    product = Product(datetime_of("2018-08-09T00"), (0,), (field,))
    assert write_grib(product, tmp_path / "p.grib2") == 1
    (message,) = read_grib(tmp_path / "p.grib2", ("gridType",))
    assert message["gridType"] == "rotated_ll"
    np.testing.assert_allclose(message["lats"], cosmo["lats"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(message["lons"], cosmo["lons"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(message["values"], cosmo["values"], rtol=0, atol=0.01)
    dataset = product_dataset(product)
    assert dataset["rotated_pole"].attrs["grid_north_pole_latitude"] == 40.0
    np.testing.assert_allclose(dataset["latitude"].values, cosmo["lats"], rtol=0, atol=1e-5)


def test_geographic_coordinates_of_a_rotated_grid_are_never_taken_per_row(
    dwd_store: Path,
) -> None:
    grid = Store.open(dwd_store).grid
    with pytest.raises(StoreError, match=r"rotated-pole grid .*: it has no latitude per row"):
        _ = grid.lats
    regular = LatLonGrid(50.0, -0.25, 3, 350.0, 0.25, 4)
    assert not regular.is_rotated and LatLonGrid.from_attrs(regular.to_attrs()) == regular
    assert LatLonGrid.from_attrs(grid.to_attrs()) == grid and not grid.matches(regular)


def datetime_of(text: str) -> object:
    return np.datetime64(text, "s").astype(object)


def hourly_copies(source: Path, target: Path, hours: int) -> Path:
    """The one-message file as `hours` hourly analyses (dataTime 18, 19, ... UTC, step 6 h)."""
    (message,) = grib_messages(source)
    copies = []
    for hour in range(hours):
        handle = eccodes.codes_new_from_message(message)
        eccodes.codes_set(handle, "dataTime", (18 + hour) * 100)
        copies.append(eccodes.codes_get_message(handle))
        eccodes.codes_release(handle)
    return write_messages(target, copies)


TINY = {"embed_dim": 16, "num_heads": 2, "encoder_layers": 1, "decoder_layers": 1, "tail_heads": 4}
FORECAST_FIELD = {
    "name": "t2m", "levels": [2], "token_count": [2, 2, 2], "token_size": [1, 9, 9],
    "normalisation": "global", **TINY,
}  # fmt: skip


@pytest.fixture(scope="module")
def hourly_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """COSMO-D2's field as three hourly analyses, valid 2018-08-09 00, 01 and 02 UTC."""
    folder = tmp_path_factory.mktemp("hourly")
    hourly = hourly_copies(shared_file(COSMO_D2), folder / "hourly.grib2", 3)
    prepare_cli(str(hourly), "--store", str(folder / "hourly.zarr"))
    return folder / "hourly.zarr"


@pytest.fixture(scope="module")
def forecast_run(tmp_path_factory: pytest.TempPathFactory, hourly_store: Path) -> Path:
    return train_briefly(tmp_path_factory.mktemp("run"), hourly_store, {"fields": [FORECAST_FIELD]})


def test_training_on_a_rotated_store(hourly_store: Path, forecast_run: Path) -> None:
    assert len(Store.open(hourly_store).field("t2m").times) == 3
    metrics = (forecast_run / "metrics.csv").read_text().splitlines()
    assert len(metrics) >= 3 and "nan" not in metrics[-1].lower()


def test_forecast_on_a_rotated_store_lies_on_its_grid_and_is_scored_there(
    forecast_run: Path, hourly_store: Path, cosmo: dict[str, np.ndarray], tmp_path: Path
) -> None:
    result = run_cli(
        "forecast", "--init", "2018-08-09T01", "--checkpoint", str(forecast_run), "--lead", "1h",
        "--out", str(tmp_path), "--format", "grib", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (message,) = read_grib(tmp_path / "forecast_20180809T0100.grib2", ("gridType", "step"))
    assert message["gridType"] == "rotated_ll" and message["step"] == 1
    assert message["values"].shape == (716, 651)
    np.testing.assert_allclose(message["lats"], cosmo["lats"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(message["lons"], cosmo["lons"], rtol=0, atol=1e-5)
    values = message["values"]
    assert np.isfinite(values).all()
    low, high = float(cosmo["values"].min()), float(cosmo["values"].max())  # 279 .. 300 K
    assert low - 15.0 < float(values.min()) and float(values.max()) < high + 15.0
    assert abs(float(values.mean()) - float(cosmo["values"].mean())) < 5.0
    # Scored on the rotated truth store, weighted by each point's geographic latitude.
    result = run_cli("evaluate", str(tmp_path / "forecast_20180809T0100.grib2"), "--truth",
                     str(hourly_store), "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    scores = {row["source"]: row for row in json.loads(result.stdout)["scores"]}
    weights = np.cos(np.radians(cosmo["lats"]))
    truth = Store.open(hourly_store).field("t2m").data[2, 0].astype(np.float64)
    expected = np.sqrt((weights * (values - truth) ** 2).sum() / weights.sum())
    assert scores["model"]["rmse"] == pytest.approx(expected, rel=1e-6)
    assert scores["persistence"]["rmse"] == 0.0  # the three hours are copies of one field


@pytest.mark.parametrize("start", [(0, 0), (300, 250), (707 - 27, 651 - 36)])
def test_product_alpha_of_a_rotated_tile_is_the_samplers(
    dwd_store: Path, start: tuple[int, int]
) -> None:
    store = Store.open(dwd_store)
    field = FieldConfig(
        name="t2m", token_count=(1, 3, 4), token_size=(1, 9, 9), normalisation="global"
    )
    sampler = NeighbourhoodSampler(store, SamplerConfig(fields=(field,)))
    expected = sampler.read(0, *start).alpha["t2m"]  # (level, n_t, 3, 4, 7)
    config = FieldModelConfig(name="t2m", levels=(2,), token_count=(1, 3, 4),
                              token_size=(1, 9, 9), normalisation="global")  # fmt: skip
    tiling = tile(store.grid, (27, 36))
    values = np.zeros((1, 1, *tiling.domain_shape), np.float32)
    times = store.field("t2m").times[:1]
    question = _field_input(DomainField(config, values), [start], times, tiling,
                            IdentityStrategy(), torch.device("cpu"), None)  # fmt: skip
    torch.testing.assert_close(question.alpha[0], expected, rtol=0, atol=0)
    lats = expected[..., 4]  # geographic (COSMO-D2's 43 .. 58 N), not rotated (-7 .. 8) ones
    assert float(lats.min()) > 43.0 and float(lats.max()) < 58.1


COARSE = LatLonGrid(51.0, -0.1, 11, 9.0, 0.1, 21)  # 0.1-degree cells over Hesse and Thuringia
DOWNSCALE_FIELD = {
    "name": "t2m", "levels": [2], "token_count": [1, 2, 2], "token_size": [1, 8, 8],
    "normalisation": "global", "residual": "time", **TINY,
}  # fmt: skip


def coarse_means(cosmo: dict[str, np.ndarray]) -> np.ndarray:
    """(11, 21) means of COSMO-D2's values over each coarse cell (its points nearest there)."""
    rows, columns = grid_position(COARSE, cosmo["lats"], cosmo["lons"])
    row, column = np.rint(rows).astype(int), np.rint(columns).astype(int)
    inside = (row >= 0) & (row < COARSE.nlat) & (column >= 0) & (column < COARSE.nlon)
    cell = (row * COARSE.nlon + column)[inside]
    sums = np.bincount(cell, cosmo["values"][inside], COARSE.nlat * COARSE.nlon)
    return (sums / np.bincount(cell, minlength=sums.size)).reshape(COARSE.shape)


def test_downscaling_lat_lon_input_onto_a_rotated_store_grid(
    hourly_store: Path, cosmo: dict[str, np.ndarray], tmp_path: Path
) -> None:
    masking = {"fields": {"t2m": {"kind": "downscaling", "factor": [1, 4, 4]}}}
    run = train_briefly(tmp_path, hourly_store, {"fields": [DOWNSCALE_FIELD]}, masking=masking)
    means = coarse_means(cosmo)
    values = np.broadcast_to(means.astype(np.float32), (1, 3, 1, *COARSE.shape))
    field = ProductField("t2m", "heightAboveGround", (2,), COARSE, values)
    coarse = tmp_path / "coarse.grib2"
    write_grib(Product(datetime(2018, 8, 9), (0, 1, 2), (field,)), coarse)
    result = run_cli(
        "downscale", "--checkpoint", str(run), "--start", "2018-08-09T00", "--end",
        "2018-08-09T02", "--input", str(coarse), "--out", str(tmp_path / "out"), "--format",
        "grib,netcdf", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    written = read_grib(
        tmp_path / "out" / "downscaling_20180809T0000_20180809T0200.grib2",
        ("gridType", "latitudeOfFirstGridPointInDegrees", "longitudeOfFirstGridPointInDegrees"),
    )
    assert len(written) == 3 and {m["gridType"] for m in written} == {"rotated_ll"}
    # The product is a block of the store's grid: COSMO-D2's own points there.
    grid = Store.open(hourly_store).grid
    first = written[0]
    row = int(np.argmin(np.abs(grid.lat_axis - first["latitudeOfFirstGridPointInDegrees"])))
    west = (grid.lon_axis - first["longitudeOfFirstGridPointInDegrees"] + 180.0) % 360.0 - 180.0
    column = int(np.argmin(np.abs(west)))  # GRIB2 codes rotated longitudes 0 .. 360
    block = np.s_[row : row + first["lats"].shape[0], column : column + first["lats"].shape[1]]
    assert first["lats"].shape[0] > 45 and first["lats"].shape[1] > 55  # ~1 x 2 degrees
    for message in written:
        np.testing.assert_allclose(message["lats"], cosmo["lats"][block], rtol=0, atol=1e-5)
        np.testing.assert_allclose(message["lons"], cosmo["lons"][block], rtol=0, atol=1e-5)
    # Every product point lies in a coarse cell, and the block reaches the cells' edges.
    rows, columns = grid_position(COARSE, first["lats"], first["lons"])
    assert rows.min() >= -0.5 and rows.max() < 10.5 and columns.min() >= -0.5
    assert columns.max() < 20.5 and min(rows.min(), columns.min()) < -0.3
    # Values: finite, near the coarse cells' means they were made from (a barely trained model).
    shown = means[np.rint(rows).astype(int), np.rint(columns).astype(int)]
    for message in written:
        assert np.isfinite(message["values"]).all()
        assert np.abs(message["values"] - shown).mean() < 3.0
        assert means.min() - 5.0 < message["values"].min() < message["values"].max() < 305.0
    # Scored on the rotated store beside the coarse input interpolated to the points.
    product = tmp_path / "out" / "downscaling_20180809T0000_20180809T0200.nc"
    result = run_cli("evaluate", str(product), "--truth", str(hourly_store), "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["scores"]
    scores = {row["source"]: row for row in rows if row["lead_h"] == 1}
    truth = cosmo["values"][block].astype(np.float32).astype(np.float64)
    weights = np.cos(np.radians(first["lats"]))
    error = written[1]["values"] - truth
    expected = np.sqrt((weights * error**2).sum() / weights.sum())
    assert scores["model"]["rmse"] == pytest.approx(expected, abs=2e-3)  # GRIB vs NetCDF
    assert 0.1 < scores["bilinear_in_space"]["rmse"] < 2.0  # the 0.1-degree means' own error


def test_an_area_of_a_rotated_grid_is_the_block_around_its_points(dwd_store: Path) -> None:
    grid = Store.open(dwd_store).grid
    area = area_from_bounds(grid, (51.0, 9.0, 50.0, 11.0))
    lats, lons = grid.geographic()
    inside = (lats >= 50.0) & (lats <= 51.0) & (lons >= 9.0) & (lons <= 11.0)
    block = np.zeros_like(inside)
    block[area.row_start : area.row_stop, area.col_start : area.col_start + area.cols] = True
    assert inside.sum() > 3000 and not (inside & ~block).any()  # every point inside is in it
    edges = [inside[area.row_start], inside[area.row_stop - 1], inside[:, area.col_start],
             inside[:, area.col_start + area.cols - 1]]  # fmt: skip
    assert all(edge.any() for edge in edges)  # and it is no larger
    product = tile(grid, (18, 18), area).area_grid()
    assert product.south_pole == grid.south_pole and product.shape == (area.rows, area.cols)
    np.testing.assert_allclose(product.geographic()[0], lats[block].reshape(product.shape))


def test_correct_on_a_rotated_store_writes_the_inputs_grid_and_is_scored(
    forecast_run: Path, hourly_store: Path, tmp_path: Path
) -> None:
    source = hourly_store.parent / "hourly.grib2"
    out = tmp_path / "corrected.grib2"
    result = run_cli("correct", "--ifs", str(source), "--checkpoint", str(forecast_run), "-o",
                     str(out), "--truth", str(hourly_store), "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["corrected_messages"] == 3
    given, corrected = read_grib(source, ()), read_grib(out, ("gridType",))
    assert [m["gridType"] for m in corrected] == ["rotated_ll"] * 3
    for before, after in zip(given, corrected, strict=True):
        np.testing.assert_array_equal(after["lats"], before["lats"])
        change = after["values"] - before["values"]
        assert np.isfinite(change).all() and 0.0 < np.sqrt(np.mean(change**2)) < 10.0
    score = summary["score"]["t2m"]
    assert score["rmse_raw"] < 0.02  # the input is the truth, up to GRIB packing
    assert score["rmse_corrected"] == pytest.approx(summary["rms_change"]["t2m"], rel=0.05)
