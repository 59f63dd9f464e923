"""Stores and products as the field's own tools read them, without atmorep: plain xarray opens a
store, cf_xarray finds the axes of a NetCDF product and compliance-checker (CF 1.10) passes it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import cf_xarray  # noqa: F401  (the .cf accessor)
import numpy as np
import pytest
import xarray as xr

from atmorep_core.data.prepare import prepare
from atmorep_core.grid import LatLonGrid
from atmorep_core.io.netcdf import write_netcdf
from atmorep_core.io.product import Product, ProductField
from atmorep_core.io.product_read import read_product
from atmorep_core.io.store import Store
from atmorep_core.rotated_grid import RotatedGrid
from tests.helpers import grib_messages, shared_file, write_messages
from tests.killer import INGEST_FAULT_POINTS, run_killed

T2M = "era5/era5-t2m-uk-2019-03-01to24.grib"  # 576 hourly steps, 33 x 49 points


@pytest.fixture(scope="module")
def t2m_halves(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The t2m sample's first 48 and next 24 hours as two files."""
    folder = tmp_path_factory.mktemp("halves")
    messages = grib_messages(shared_file(T2M))
    return (
        write_messages(folder / "first.grib", messages[:48]),
        write_messages(folder / "second.grib", messages[48:72]),
    )


def _strip_description(store: Path) -> None:
    """Make `store` look as atmorep wrote it before it described itself."""
    for metadata in store.rglob("zarr.json"):
        node = json.loads(metadata.read_text())
        node.pop("consolidated_metadata", None)
        if node["node_type"] == "array" and metadata.parent.parent != store:
            node["attributes"] = {}
            if metadata.parent.name == "time":
                node.pop("dimension_names", None)
        metadata.write_text(json.dumps(node))
    for axis in ("lat", "lon"):
        shutil.rmtree(store / "t2m" / axis)


def _open_plain(store: Path, field: str) -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback from consolidated metadata
        return xr.open_zarr(store, group=field).load()


def test_plain_xarray_opens_a_prepared_store_labelled_and_equal(global_store: Path) -> None:
    dataset = _open_plain(global_store, "temperature")
    store = Store.open(global_store).field("temperature")
    data = dataset["data"]
    assert data.dims == ("time", "level", "lat", "lon")
    np.testing.assert_array_equal(data.values, store.data[...])
    np.testing.assert_array_equal(dataset["time"].values, store.times.astype("datetime64[ns]"))
    assert dataset["level"].values.tolist() == [500, 850]
    assert dataset["level"].attrs == {
        "standard_name": "air_pressure", "long_name": "pressure", "units": "hPa",
        "positive": "down", "axis": "Z", "GRIB_typeOfLevel": "isobaricInhPa",
    }  # fmt: skip
    grid = Store.open(global_store).grid
    np.testing.assert_array_equal(dataset["lat"].values, grid.lat_axis)
    np.testing.assert_array_equal(dataset["lon"].values, grid.lon_axis)
    assert (dataset["lat"].attrs["units"], dataset["lon"].attrs["axis"]) == ("degrees_north", "X")
    assert data.attrs == {
        "units": "K", "long_name": "air temperature", "standard_name": "air_temperature",
    }  # fmt: skip
    assert dataset["time"].encoding["units"] == "seconds since 1970-01-01 00:00:00"
    assert dataset.attrs["short_name"] == "t" and dataset.attrs["param_id"] == 130
    tree = xr.open_datatree(global_store, engine="zarr")
    assert sorted(tree.children) == ["geopotential", "temperature"]
    month = tree["temperature/stats"].dataset["local_mean"]
    assert month.dims == ("month", "level", "lat", "lon")
    assert tree["temperature/stats/month"].values.tolist() == [201701]


def test_plain_readers_see_each_commit_and_an_older_store_is_described_by_its_next_append(
    tmp_path: Path, t2m_halves: tuple[Path, Path]
) -> None:
    first, second = t2m_halves
    path = tmp_path / "s.zarr"
    prepare([first], path)
    assert _open_plain(path, "t2m").sizes["time"] == 48
    _strip_description(path)
    assert len(Store.open(path).field("t2m").times) == 48  # an older store reads as before
    with pytest.raises(KeyError, match="dimension_names"):
        xr.open_zarr(path, group="t2m", consolidated=False)
    prepare([second], path)
    dataset = _open_plain(path, "t2m")
    assert dataset.sizes["time"] == 72
    assert dataset["time"].values[-1] == np.datetime64("2019-03-03T23:00")
    assert dataset["data"].attrs["standard_name"] == "air_temperature"
    np.testing.assert_array_equal(dataset["data"].values, Store.open(path).field("t2m").data[...])


def test_a_plain_reader_sees_the_last_commit_while_an_ingest_is_unfinished(
    tmp_path: Path, t2m_halves: tuple[Path, Path]
) -> None:
    first, second = t2m_halves
    path = tmp_path / "s.zarr"
    prepare([first], path)
    before = _open_plain(path, "t2m")
    # Killed with its rows written and its sources recorded, before the commit.
    killed = run_killed(3, INGEST_FAULT_POINTS, "prepare", str(second), "--store", str(path))
    assert killed.returncode == -9, killed.stderr
    assert Store.open(path).updating
    assert Store.open(path).field("t2m").array("time").shape == (72,)  # the arrays have grown
    during = _open_plain(path, "t2m")
    xr.testing.assert_identical(during, before)
    prepare([second], path)  # rolls the unfinished ingest back and makes it again
    assert _open_plain(path, "t2m").sizes["time"] == 72


# --- CF NetCDF products -----------------------------------------------------------------------

INIT = datetime(2021, 3, 14, 12)
GLOBAL = LatLonGrid(90.0, -6.0, 31, 0.0, 6.0, 60)
UK = LatLonGrid(58.0, -0.25, 33, -10.0, 0.25, 49)
ROTATED = RotatedGrid(
    south_pole_lat=-40.0, south_pole_lon=10.0, rlat_first=-2.0, rlat_step=0.5, rlat_last=2.0,
    nj=9, rlon_first=-3.0, rlon_last=3.0, ni=13,
)  # fmt: skip
PROVENANCE = {"checkpoint": "run/step-300", "checkpoint_step": "300", "seed": "7", "f": "1,4,4"}


def _field(name: str, level_type: str, levels: tuple[int, ...], grid: Any, members: int) -> Any:
    rng = np.random.default_rng(len(name))
    values = 250.0 + rng.normal(0.0, 5.0, (members, 2, len(levels), *grid.shape))
    return ProductField(name, level_type, levels, grid, values.astype(np.float32))


def _ensemble() -> Product:
    fields = (
        _field("temperature", "hybrid", (96, 137), GLOBAL, 3),
        _field("geopotential", "isobaricInhPa", (500, 850), GLOBAL, 3),
        _field("t2m", "surface", (0,), UK, 3),
    )
    return Product(INIT, (0, 6), fields, attributes=PROVENANCE)


def _rotated_deterministic() -> Product:
    fields = (_field("t2m", "heightAboveGround", (2,), ROTATED, 1),)
    fields += (_field("msl", "meanSea", (0,), ROTATED, 1),)
    return Product(INIT, (1, 2), fields, kind="downscaling")


def test_cf_xarray_finds_every_axis_of_an_ensemble_product(tmp_path: Path) -> None:
    write_netcdf(_ensemble(), tmp_path / "p.nc")
    with xr.open_dataset(tmp_path / "p.nc") as dataset:
        assert dataset.cf.axes == {
            "X": ["longitude", "longitude_2"], "Y": ["latitude", "latitude_2"],
            "Z": ["height", "model_level", "pressure"], "T": ["time"],
        }  # fmt: skip
        assert dataset.cf.standard_names["realization"] == ["realization"]
        assert dataset["realization"].values.tolist() == [1, 2, 3]
        for name, vertical in (("temperature", "model_level"), ("t2m", "height")):
            assert dataset[name].cf["Z"].name == vertical
            assert dataset[name].cf["T"].name == "time"
            assert dataset[name].dims[:2] == ("time", "realization")  # time first, for CDO
        assert dataset["pressure"].attrs["units"] == "hPa"
        assert float(dataset["t2m"].cf["Z"]) == 2.0  # 2 m above ground, not the surface
        assert dataset["time"].values.tolist() == [
            np.datetime64(INIT, "ns").astype(int) + h * 3_600_000_000_000 for h in (0, 6)
        ]
        assert (dataset.attrs["checkpoint_step"], dataset.attrs["seed"]) == (300, 7)
        assert dataset.attrs["f"] == "1,4,4"


def test_a_netcdf_product_reads_back_exactly(tmp_path: Path) -> None:
    written = _ensemble()
    write_netcdf(written, tmp_path / "p.nc")
    back = read_product(tmp_path / "p.nc")
    assert (back.init, back.steps_hours, dict(back.attributes)) == (INIT, (0, 6), PROVENANCE)
    for read, field in zip(back.fields, written.fields, strict=True):
        np.testing.assert_array_equal(read.values, field.values)
        assert read.grid == field.grid
    levels = [(f.name, f.level_type, f.levels) for f in back.fields]
    assert levels == [
        ("temperature", "hybrid", (96, 137)), ("geopotential", "isobaricInhPa", (500, 850)),
        ("t2m", "heightAboveGround", (2,)),  # as the GRIB2 product has it
    ]  # fmt: skip


@pytest.mark.parametrize("make", [_ensemble, _rotated_deterministic], ids=["ensemble", "rotated"])
def test_compliance_checker_finds_no_cf_errors(tmp_path: Path, make: Any) -> None:
    write_netcdf(make(), tmp_path / "p.nc")
    checker = Path(sys.executable).parent / "compliance-checker"
    report = tmp_path / "report.json"
    command = [str(checker), "--test", "cf:1.10", "--format", "json", "-o", str(report)]
    run = subprocess.run([*command, str(tmp_path / "p.nc")], capture_output=True, text=True)
    assert report.is_file(), run.stderr
    result = json.loads(report.read_text())["cf:1.10"]
    failed = {
        priority: sorted(check["name"] for check in result[priority] if _failed(check))
        for priority in ("high_priorities", "medium_priorities")
    }
    # Warnings only where CF's recommendation conflicts with CDO (time first) or where the
    # ensemble statistics name the realization dimension they summarise away.
    assert failed["high_priorities"] == [], result["high_priorities"]
    assert set(failed["medium_priorities"]) <= {"§2.4 Dimensions", "§7.3 Cell Methods"}


def _failed(check: dict[str, Any]) -> bool:
    scored, possible = check["value"]
    return bool(scored < possible)
