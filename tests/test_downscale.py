"""`atmorep downscale` on the real ERA5 2 m temperature sample: 1-degree block means written as
GRIB, a briefly trained downscaling model, products on the model's grid and on a rotated grid,
scored by `atmorep evaluate` beside its downscaling baselines."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

from atmorep_core.io.grib_products import write_grib
from atmorep_core.io.product import Product, ProductField
from atmorep_core.io.store import Store
from atmorep_core.rotated_grid import RotatedGrid, rotate
from benchmarks.grib_edits import write_block_means
from tests.conftest import T2M
from tests.helpers import read_grib, run_cli, shared_file, train_recipe_briefly

STEPS = 150
START, END = "2019-03-21T00", "2019-03-21T05"


@pytest.fixture(scope="module")
def coarse_grib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("coarse") / "t2m-1deg.grib"
    assert write_block_means(shared_file(T2M), path, 4) == 24 * 24
    return path


@pytest.fixture(scope="module")
def downscale_run(tmp_path_factory: pytest.TempPathFactory, t2m_store: Path) -> Path:
    """The downscaling recipe's question, a smaller model, trained briefly on 1-19 March."""
    folder = tmp_path_factory.mktemp("downscale-run")
    return train_recipe_briefly("t2m-downscale.yaml", t2m_store, folder, STEPS)


def downscale_cli(run: Path, out: Path, *extra: str) -> dict[str, Any]:
    result = run_cli(
        "downscale", "--checkpoint", str(run), "--start", START, "--end", END, "--out", str(out),
        "--json", *extra,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def truth_and_blocks(store_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(time, 32, 48) truth of 21 March 00-05 UTC and its 4 x 4 block means back on its points."""
    arrays = Store.open(store_path).field("t2m")
    first = int(np.searchsorted(arrays.times, np.datetime64(START)))
    truth = np.asarray(arrays.data[first : first + 6, 0, :32, :48], dtype=np.float64)
    means = truth.reshape(6, 8, 4, 12, 4).mean(axis=(2, 4))
    return truth, np.repeat(np.repeat(means, 4, axis=1), 4, axis=2)


def test_block_means_sit_at_the_centres_of_their_blocks(coarse_grib: Path) -> None:
    fine, coarse = read_grib(shared_file(T2M), ()), read_grib(coarse_grib, ())
    assert coarse[0]["values"].shape == (8, 12)
    expected = fine[0]["values"][:32, :48].reshape(8, 4, 12, 4).mean(axis=(1, 3))
    np.testing.assert_allclose(coarse[0]["values"], expected, atol=2e-3)  # 16-bit packing
    centres = fine[0]["lats"][:32, 0].reshape(8, 4).mean(axis=1)
    np.testing.assert_allclose(coarse[0]["lats"][:, 0], centres)
    assert coarse[0]["lons"][0, 0] == pytest.approx(-9.625)  # -10 + 1.5 x 0.25


def test_the_product_lies_on_the_covered_fine_grid_and_beats_the_blocks_it_was_given(
    tmp_path: Path, coarse_grib: Path, downscale_run: Path, t2m_store: Path
) -> None:
    manifest = downscale_cli(
        downscale_run, tmp_path, "--input", str(coarse_grib), "--members", "2",
        "--format", "netcdf", "--plot", "t2m",
    )  # fmt: skip
    assert manifest["steps_hours"] == list(range(6)) and manifest["members"] == 2
    assert manifest["grid"] == {"lat_first": 58.0, "lat_step": -0.25, "nlat": 32,
                                "lon_first": -10.0, "lon_step": 0.25, "nlon": 48}  # fmt: skip
    stem = "downscaling_20190321T0000_20190321T0500"
    with xr.open_dataset(tmp_path / f"{stem}.nc") as nc:
        assert nc.attrs["product_kind"] == "downscaling"
        assert nc.attrs["downscaling_factor"] == "1,4,4"
        mean = nc["t2m_mean"].values  # (step, latitude, longitude)
    truth, blocks = truth_and_blocks(t2m_store)
    model_rmse = np.sqrt(np.mean((mean - truth) ** 2))
    assert model_rmse < np.sqrt(np.mean((blocks - truth) ** 2))
    assert f"maps/{stem}/t2m_surface0_005h.png" in manifest["outputs"]


def test_evaluate_scores_downscaling_beside_bilinear_and_the_regression(
    tmp_path: Path, coarse_grib: Path, downscale_run: Path, t2m_store: Path
) -> None:
    downscale_cli(downscale_run, tmp_path / "p", "--input", str(coarse_grib), "--format", "netcdf")
    result = run_cli(
        "evaluate", str(tmp_path / "p" / "downscaling_*.nc"), "--truth", str(t2m_store), "--json"
    )
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    sources = {r["source"] for r in scores["scores"]}
    assert sources == {"model", "bilinear_in_space", "regression_on_bilinear", "climatology"}
    rmse = {s: np.mean([r["rmse"] for r in scores["scores"] if r["source"] == s]) for s in sources}
    assert rmse["regression_on_bilinear"] < rmse["bilinear_in_space"] < rmse["climatology"]


def test_a_rotated_target_grid_from_a_grib_file(
    tmp_path: Path, coarse_grib: Path, downscale_run: Path
) -> None:
    pole = (-40.0, 10.0)  # COSMO's: rotated (0, 0) lies at 50 N 10 E
    centre = rotate(np.array(54.0), np.array(-4.0), *pole)  # over the UK sample
    target = RotatedGrid.regular(
        pole, (float(centre[0]) - 1.0, float(centre[1]) - 1.5), (0.2, 0.2), (11, 16)
    )
    template = tmp_path / "target.grib2"
    values = np.zeros((1, 1, 1, *target.shape), np.float32)
    field = ProductField("t2m", "surface", (0,), target, values)
    write_grib(Product(datetime(2019, 3, 21), (0,), (field,)), template)
    downscale_cli(
        downscale_run, tmp_path / "out", "--input", str(coarse_grib), "--to", str(template),
        "--format", "grib",
    )  # fmt: skip
    written = read_grib(tmp_path / "out" / "downscaling_20190321T0000_20190321T0500.grib2",
                        ("gridType", "step"))  # fmt: skip
    original = read_grib(template, ())
    assert len(written) == 6 and {m["gridType"] for m in written} == {"rotated_ll"}
    for message in written:
        np.testing.assert_array_equal(message["lats"], original[0]["lats"])
        np.testing.assert_array_equal(message["lons"], original[0]["lons"])
        assert 265.0 < message["values"].mean() < 290.0  # March over the UK, in kelvin


def test_bad_checkpoints_times_and_grids_exit_with_one_line(
    tmp_path: Path, coarse_grib: Path, downscale_run: Path, t2m_run: Path
) -> None:
    cases = (
        ((str(t2m_run), START, END), 2, "downscaling strategy"),
        ((str(downscale_run), "2019-03-27T00", "2019-03-27T05"), 6, "no input for t2m"),
        ((str(downscale_run), START, END, "--to", "atlantis"), 2, "unknown grid 'atlantis'"),
    )
    for (run, start, end, *extra), code, named in cases:
        result = run_cli(
            "downscale", "--checkpoint", run, "--input", str(coarse_grib), "--start", start,
            "--end", end, "--out", str(tmp_path), *extra,
        )  # fmt: skip
        assert result.returncode == code and named in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.glob("downscaling_*"))
