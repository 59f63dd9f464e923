"""`atmorep forecast` end to end on the real ERA5 samples: products, cron safety, exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from filelock import FileLock

from atmorep_core.io.run_folder import LOCK_NAME
from atmorep_core.io.store import Store
from tests.conftest import T2M
from tests.helpers import decode_all, run_cli, shared_file

STEM = "forecast_20190322T1200"


def forecast_cli(
    run: Path, out: Path, *extra: str, init: str = "2019-03-22T12", lead: str = "6h"
) -> Any:
    result = run_cli(
        "forecast", "--init", init, "--checkpoint", str(run), "--lead", lead, "--out", str(out),
        "--json", *extra,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_uk_t2m_products_read_back_with_cfgrib_and_xarray(
    tmp_path: Path, t2m_run: Path, t2m_store: Path
) -> None:
    manifest = forecast_cli(t2m_run, tmp_path, "--members", "3", "--plot", "t2m")
    assert manifest["steps_hours"] == [1, 2, 3, 4, 5, 6] and manifest["members"] == 3
    grib, netcdf = tmp_path / f"{STEM}.grib2", tmp_path / f"{STEM}.nc"
    expected = [grib.name, netcdf.name, f"maps/{STEM}/t2m_surface0_006h.png"]
    assert sorted(manifest["outputs"]) == sorted(expected)
    messages = decode_all(grib)
    assert len(messages) == 3 * 6  # members x steps
    first = messages[0]  # member 1 at 1 h: valid 13 UTC
    assert (first["short_name"], first["date"], first["time"]) == ("2t", 20190322, 1300)
    assert {m["number"] for m in messages} == {1, 2, 3}
    with (
        xr.open_dataset(grib, engine="cfgrib", backend_kwargs={"indexpath": ""}) as cf,
        xr.open_dataset(netcdf) as nc,
    ):
        t2m = cf["t2m"]  # (number, step, latitude, longitude)
        assert t2m.shape == (3, 6, 33, 49)
        assert float(cf.latitude[0]) == 58.0 and float(cf.longitude[0]) == -10.0
        ensemble = nc["t2m"].transpose("realization", "time", ...).values  # as cfgrib's
        assert np.abs(t2m.values - ensemble).max() < 0.01  # 16-bit packing over ~20 K
        mean = nc["t2m_mean"].values
    truth = Store.open(t2m_store).field("t2m")
    at = np.flatnonzero(truth.times == np.datetime64("2019-03-22T18:00"))[0]
    rmse = float(np.sqrt(np.mean((mean[-1] - truth.data[at, 0]) ** 2)))
    assert rmse < 3.0, rmse  # a 6 h forecast of t2m in kelvin, not noise


def test_a_rerun_is_a_no_op_and_force_redoes_it(tmp_path: Path, t2m_run: Path) -> None:
    first = forecast_cli(t2m_run, tmp_path, "--format", "grib")
    grib = tmp_path / f"{STEM}.grib2"
    stamp = grib.stat().st_mtime_ns
    again = forecast_cli(t2m_run, tmp_path, "--format", "grib")
    assert not first["skipped"] and again["skipped"]
    assert grib.stat().st_mtime_ns == stamp and again["outputs"] == first["outputs"]
    forced = forecast_cli(t2m_run, tmp_path, "--format", "grib", "--force")
    assert not forced["skipped"] and forced["outputs"] == first["outputs"]  # same bytes
    log = (tmp_path / "atmorep.log").read_text().splitlines()
    assert [line.split()[1] for line in log] == ["start", "done", "start", "up", "start", "done"]


def test_a_folder_another_run_writes_to_is_refused(tmp_path: Path, t2m_run: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    with FileLock(tmp_path / LOCK_NAME):
        result = run_cli(
            "forecast", "--init", "2019-03-22T12", "--checkpoint", str(t2m_run), "--out",
            str(tmp_path),
        )  # fmt: skip
    assert result.returncode == 5
    assert "another atmorep run is writing there" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.glob("forecast_*"))


def test_a_missing_init_time_exits_6_naming_the_times(tmp_path: Path, t2m_run: Path) -> None:
    result = run_cli(
        "forecast", "--init", "2019-04-01T00", "--checkpoint", str(t2m_run), "--out",
        str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 6
    assert "no input for t2m" in result.stderr and "2019-03-31T16:00" in result.stderr
    assert "and 3 more" in result.stderr  # 9 input hours, 6 named
    assert not list(tmp_path.glob("forecast_*"))


def test_bad_options_are_named(tmp_path: Path, t2m_run: Path) -> None:
    for option, value in (("--lead", "5x"), ("--area", "60/-10"), ("--init", "tomorrow")):
        result = run_cli("forecast", "--init", "2019-03-22T12", "--checkpoint", str(t2m_run),
                         "--out", str(tmp_path), option, value)  # fmt: skip
        assert result.returncode == 2 and option in result.stderr, result.stderr


def test_grib_input_gives_the_forecast_of_the_store(
    tmp_path: Path, t2m_run: Path, t2m_store: Path
) -> None:
    forecast_cli(t2m_run, tmp_path / "store", "--store", str(t2m_store), "--format", "netcdf")
    forecast_cli(t2m_run, tmp_path / "grib", "--input", str(shared_file(T2M)), "--format", "netcdf")
    with (
        xr.open_dataset(tmp_path / "store" / f"{STEM}.nc") as a,
        xr.open_dataset(tmp_path / "grib" / f"{STEM}.nc") as b,
    ):
        assert np.array_equal(a["t2m"].values, b["t2m"].values)


def test_global_ensemble_file_gives_global_products(tmp_path: Path, global_run: Path) -> None:
    manifest = forecast_cli(
        global_run,
        tmp_path,
        "--members",
        "2",
        "--plot",
        "temperature",
        init="2017-01-02T00",
        lead="12h",
    )
    assert manifest["steps_hours"] == [12] and manifest["grid"]["nlon"] == 120
    grib = tmp_path / "forecast_20170102T0000.grib2"
    with xr.open_dataset(
        grib,
        engine="cfgrib",
        backend_kwargs={"indexpath": "", "filter_by_keys": {"shortName": "t"}},
    ) as cf:
        assert cf["t"].dims == ("number", "isobaricInhPa", "latitude", "longitude")
        assert cf["t"].shape == (2, 2, 61, 120)
        assert sorted(cf.isobaricInhPa.values.tolist()) == [500.0, 850.0]
        assert float(cf.longitude[-1]) == 357.0 and float(cf.latitude[-1]) == -90.0
        assert float(cf["t"].min()) > 200.0 and float(cf["t"].max()) < 320.0
