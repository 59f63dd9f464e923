"""`prepare` on the real GRIB samples: exact values, exact statistics, appends, regridding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from atmorep_core.data.ingest_plan import IngestOptions
from atmorep_core.data.prepare import prepare
from atmorep_core.io.store import Store
from tests.helpers import (
    assert_same_store,
    decode_all,
    grib_messages,
    shared_file,
    write_messages,
)

T2M = "era5/era5-t2m-uk-2019-03-01to24.grib"
MEMBERS = "era5/era5-levels-members.grib"
PRESSURE = "ifs/ifs-pl-r-t-u-v-z-20240603to04.grib"
GAUSSIAN = "ifs/ifs-fc-t-ml-n80-20180405T12-step12.grib"


def test_t2m_values_equal_eccodes_decoding(tmp_path: Path) -> None:
    source = shared_file(T2M)
    reports = prepare([source], tmp_path / "s.zarr")
    store = Store.open(tmp_path / "s.zarr")
    arrays = store.field("t2m")
    reference = decode_all(source)
    assert reports[0].status == "ingested" and reports[0].messages == 576
    assert arrays.data.shape == (576, 1, 33, 49)
    expected = np.stack([m["values"] for m in reference]).astype(np.float32)
    np.testing.assert_array_equal(arrays.fast()[:, 0].read().result(), expected)
    assert str(arrays.times[0]) == "2019-03-01T00:00:00"
    assert str(arrays.times[-1]) == "2019-03-24T23:00:00"
    assert arrays.time_step == np.timedelta64(3600, "s")
    np.testing.assert_allclose(store.grid.lats, np.linspace(58, 50, 33))
    np.testing.assert_allclose(store.grid.lons, np.linspace(-10, 2, 49))


def test_statistics_equal_numpy(tmp_path: Path) -> None:
    source = shared_file(T2M)
    prepare([source], tmp_path / "s.zarr")
    arrays = Store.open(tmp_path / "s.zarr").field("t2m")
    values = np.stack([m["values"] for m in decode_all(source)]).astype(np.float32)
    values = values.astype(np.float64)
    mean, std = arrays.global_norm()
    np.testing.assert_allclose(mean, [values.mean()], rtol=1e-12)
    np.testing.assert_allclose(std, [values.std()], rtol=1e-10)
    local_mean, local_std = arrays.local_norm(201903)
    np.testing.assert_allclose(local_mean[0], values.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(local_std[0], values.std(axis=0), rtol=1e-9)
    assert arrays.months.tolist() == [201903]


def test_appending_in_two_calls_equals_one_call(tmp_path: Path) -> None:
    messages = grib_messages(shared_file(T2M))
    first = write_messages(tmp_path / "first.grib", messages[:300])  # ends mid-day, mid-shard
    second = write_messages(tmp_path / "second.grib", messages[300:])
    prepare([first], tmp_path / "two.zarr")
    reports = prepare([first, second], tmp_path / "two.zarr")
    assert [r.status for r in reports] == ["skipped", "ingested"]
    prepare([second, first], tmp_path / "one.zarr")  # order of arguments does not matter
    one, two = Store.open(tmp_path / "one.zarr"), Store.open(tmp_path / "two.zarr")
    np.testing.assert_array_equal(one.field("t2m").data[:], two.field("t2m").data[:])
    for a, b in zip(one.field("t2m").global_norm(), two.field("t2m").global_norm(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    for a, b in zip(
        one.field("t2m").local_norm(201903), two.field("t2m").local_norm(201903), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-10)
    assert [s["file"] for s in two.sources] == ["first.grib", "second.grib"]


def test_rerun_skips_ingested_files_and_changes_nothing(tmp_path: Path) -> None:
    source = shared_file(MEMBERS)
    prepare([source], tmp_path / "a.zarr")
    prepare([source], tmp_path / "b.zarr")
    reports = prepare([source], tmp_path / "b.zarr")
    assert [r.status for r in reports] == ["skipped"]
    assert_same_store(tmp_path / "a.zarr", tmp_path / "b.zarr")


def test_ensemble_members_select_and_mean(tmp_path: Path) -> None:
    source = shared_file(MEMBERS)
    reference = [m for m in decode_all(source) if m["short_name"] == "t" and m["level"] == 850]
    prepare([source], tmp_path / "m3.zarr", IngestOptions(fields=("t",), member=3))
    prepare([source], tmp_path / "mean.zarr", IngestOptions(fields=("t",), member="mean"))
    m3 = Store.open(tmp_path / "m3.zarr").field("temperature")
    mean = Store.open(tmp_path / "mean.zarr").field("temperature")
    first_time = [m for m in reference if (m["date"], m["time"]) == (20170101, 0)]
    member3 = next(m["values"] for m in first_time if m["number"] == 3)
    level = int(np.flatnonzero(m3.levels == 850)[0])
    np.testing.assert_array_equal(m3.fast()[0, level].read().result(), member3.astype(np.float32))
    ensemble_mean = np.mean([m["values"] for m in first_time], axis=0)
    np.testing.assert_allclose(mean.fast()[0, level].read().result(), ensemble_mean, rtol=1e-6)
    assert m3.meta.member == "3" and mean.meta.member == "mean"
    assert Store.open(tmp_path / "m3.zarr").fields == ["temperature"]


def test_pressure_levels_many_fields_and_steps(tmp_path: Path) -> None:
    source = shared_file(PRESSURE)
    prepare([source], tmp_path / "s.zarr")
    store = Store.open(tmp_path / "s.zarr")
    assert store.fields == [
        "geopotential", "relative_humidity", "temperature", "velocity_u", "velocity_v"
    ]  # fmt: skip
    arrays = store.field("velocity_u")
    assert arrays.levels.tolist() == [300, 400, 500, 700, 850, 1000]
    # two runs a day with steps 0 and 6 h give valid times every 6 h
    assert arrays.time_step == np.timedelta64(6 * 3600, "s") and len(arrays.times) == 8
    reference = decode_all(source)
    u500 = [m for m in reference if m["short_name"] == "u" and m["level"] == 500]
    u500.sort(key=lambda m: (m["date"], m["time"]))
    stored = arrays.fast()[:, 2].read().result()
    np.testing.assert_array_equal(stored, np.stack([m["values"] for m in u500]).astype(np.float32))


def test_gaussian_grid_is_regridded_onto_lat_lon(tmp_path: Path) -> None:
    source = shared_file(GAUSSIAN)
    prepare([source], tmp_path / "s.zarr", IngestOptions(resolution_deg=1.5))
    store = Store.open(tmp_path / "s.zarr")
    arrays = store.field("temperature")
    assert store.grid.shape == (121, 240) and store.grid.is_global_in_lon
    assert arrays.levels.tolist() == [1, 51, 101]
    stored = arrays.fast()[0].read().result().astype(np.float64)
    # independent reference: xarray's linear interpolation of cfgrib's reading, away from the
    # poles (beyond the last Gaussian row the store pads with the row's zonal mean)
    dataset = xr.open_dataset(source, engine="cfgrib", backend_kwargs={"indexpath": ""})
    inner = np.abs(store.grid.lats) < 88.0
    lons = store.grid.lons[store.grid.lons <= dataset.longitude.values[-1]]
    expected = dataset.t.interp(latitude=store.grid.lats[inner], longitude=lons).values
    got = stored[:, inner][:, :, : len(lons)]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-3)
    assert np.isfinite(stored).all()


def test_gaussian_default_resolution_follows_the_input(tmp_path: Path) -> None:
    prepare([shared_file(GAUSSIAN)], tmp_path / "s.zarr")
    grid = Store.open(tmp_path / "s.zarr").grid
    assert grid.shape == (161, 320) and abs(grid.lon_step - 1.125) < 1e-12
