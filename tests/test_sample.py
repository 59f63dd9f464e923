"""The embedded sample: a real dynamical core run, written as ERA5 model-level GRIB per month."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import eccodes
import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from atmorep_cli.main import app
from atmorep_core.errors import ConfigError
from atmorep_core.fields import lookup
from atmorep_core.sample.levels import make_synthesis, vertical_weights
from atmorep_core.sample.simulate import (
    ERA5_LEVELS,
    SAMPLE_FIELDS,
    SampleSettingError,
    SampleSettings,
    _build_core,
    generate_sample,
)

# Two hours in January and two in February: the record crosses a month boundary.
TINY = SampleSettings(
    start=datetime(2020, 1, 31, 22),
    days=4 / 24,
    spinup_days=1.0,
    resolution_deg=5.0,
    truncation=21,
    layers=8,
    seed=7,
)
HOURS = {
    1: [datetime(2020, 1, 31, 22), datetime(2020, 1, 31, 23)],
    2: [datetime(2020, 2, 1, 0), datetime(2020, 2, 1, 1)],
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    out_dir = tmp_path_factory.mktemp("sample")
    stages: list[tuple[str, float]] = []
    files = generate_sample(out_dir, TINY, lambda stage, done: stages.append((stage, done)))
    assert stages[-1] == ("record", 1.0)
    return out_dir, files


def open_field(out_dir: Path, name: str, month: int) -> xr.DataArray:
    path = out_dir / f"era5_{name}_y2020_m{month:02d}.grib"
    ds = xr.open_dataset(path, engine="cfgrib", backend_kwargs={"indexpath": ""})
    return ds[lookup(name).short_name].load()


def grib_keys(path: Path) -> list[dict[str, object]]:
    keys = ("shortName", "typeOfLevel", "level", "dataDate", "dataTime", "step")
    keys += ("class", "stream", "type", "edition", "Ni", "Nj")
    found = []
    with open(path, "rb") as stream:
        while (handle := eccodes.codes_grib_new_from_file(stream)) is not None:
            found.append({key: eccodes.codes_get(handle, key) for key in keys})
            eccodes.codes_release(handle)
    return found


@pytest.mark.slow
def test_one_file_per_field_and_month(tiny_run: tuple[Path, list[Path]]) -> None:
    out_dir, files = tiny_run
    expected = {f"era5_{name}_y2020_m{m:02d}.grib" for name in SAMPLE_FIELDS for m in (1, 2)}
    assert {path.name for path in files} == expected | {"sample.json"}
    assert {path.name for path in out_dir.iterdir()} == expected | {"sample.json"}  # no .tmp


@pytest.mark.slow
def test_messages_carry_era5_keys(tiny_run: tuple[Path, list[Path]]) -> None:
    out_dir, _ = tiny_run
    for name in SAMPLE_FIELDS:
        for month, hours in HOURS.items():
            found = grib_keys(out_dir / f"era5_{name}_y2020_m{month:02d}.grib")
            assert len(found) == len(hours) * len(ERA5_LEVELS)
            stamps = {(k["dataDate"], k["dataTime"]) for k in found}
            assert stamps == {(int(t.strftime("%Y%m%d")), t.hour * 100) for t in hours}
            assert {k["level"] for k in found} == set(ERA5_LEVELS)
            for keys in found:
                assert keys["shortName"] == lookup(name).short_name
                assert (keys["class"], keys["stream"], keys["type"]) == ("ea", "oper", "an")
                assert (keys["typeOfLevel"], keys["step"], keys["edition"]) == ("hybrid", 0, 2)
                assert (keys["Nj"], keys["Ni"]) == (37, 72)


@pytest.mark.slow
def test_temperature_is_an_atmosphere(tiny_run: tuple[Path, list[Path]]) -> None:
    t = open_field(tiny_run[0], "temperature", 2)
    assert t.dims == ("time", "hybrid", "latitude", "longitude")
    assert float(t.min()) > 180.0 and float(t.max()) < 330.0
    zonal = t.sel(hybrid=137).mean(("time", "longitude"))
    tropics = float(zonal.sel(latitude=slice(20, -20)).mean())
    poles = float(zonal.where(abs(zonal.latitude) >= 70).mean())
    assert tropics - poles > 20.0
    # Colder aloft: level 96 (about 500 hPa) is well below level 137 (the ground).
    assert float((t.sel(hybrid=137) - t.sel(hybrid=96)).mean()) > 15.0


@pytest.mark.slow
def test_winds_are_jets_and_eddies(tiny_run: tuple[Path, list[Path]]) -> None:
    u = open_field(tiny_run[0], "velocity_u", 1)
    v = open_field(tiny_run[0], "velocity_v", 1)
    w = open_field(tiny_run[0], "velocity_z", 1)
    vo = open_field(tiny_run[0], "vorticity", 1)
    for data in (u, v, w, vo):
        assert np.isfinite(data.values).all()
    # Westerly jets in both mid-latitudes at about 500 hPa, tens of m/s.
    jets = u.sel(hybrid=96).mean(("time", "longitude"))
    assert float(jets.sel(latitude=slice(60, 30)).max()) > 15.0
    assert float(jets.sel(latitude=slice(-30, -60)).max()) > 15.0
    assert 20.0 < float(abs(u).max()) < 120.0
    assert 0.5 < float(abs(v).max()) < 80.0  # the perturbation and the noise make v
    assert 1e-5 < float(abs(vo).max()) < 1e-3
    assert 1e-4 < float(abs(w).max()) < 5.0


@pytest.mark.slow
def test_provenance_records_the_run(tiny_run: tuple[Path, list[Path]]) -> None:
    record = json.loads((tiny_run[0] / "sample.json").read_text())
    assert record["settings"]["truncation"] == 21
    assert record["settings"]["seed"] == 7
    assert record["era5_levels"] == list(ERA5_LEVELS)
    assert len(record["sigma_centres"]) == 8
    assert len(record["files"]) == 12


def test_the_seed_sets_the_initial_noise() -> None:
    def initial_temperature(seed: int) -> np.ndarray:
        core = _build_core(replace(TINY, seed=seed))  # builds, compiles nothing
        return np.asarray(core.initial_state.temperature_variation)

    first, again, other = initial_temperature(3), initial_temperature(3), initial_temperature(4)
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).max() > 1e-4


def test_synthesis_reproduces_the_core_grid() -> None:
    from dinosaur import spherical_harmonic

    grid = spherical_harmonic.Grid.T21()
    modal = np.random.default_rng(0).normal(size=grid.modal_shape) * grid.mask
    lon, sin_lat = grid.nodal_axes
    synthesis = make_synthesis(
        grid.longitude_wavenumbers,
        grid.total_wavenumbers,
        np.degrees(np.arcsin(sin_lat)),
        np.degrees(lon),
    )
    expected = np.asarray(grid.to_nodal(modal.astype(np.float32))).T  # (lat, lon)
    np.testing.assert_allclose(synthesis(modal), expected, atol=1e-4)


def test_vertical_weights_are_exact_for_linear_profiles_in_log_sigma() -> None:
    centres = np.array([0.1, 0.3, 0.6, 0.9, 0.98])
    targets = (0.2, 0.5, 0.95, 0.999)  # the last one extrapolates
    weights = vertical_weights(centres, targets)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    profile = 3.0 + 2.0 * np.log(centres)
    np.testing.assert_allclose(weights @ profile, 3.0 + 2.0 * np.log(targets))


def test_bad_settings_name_the_setting() -> None:
    with pytest.raises(SampleSettingError, match="resolution_deg") as caught:
        SampleSettings(resolution_deg=7.0)
    assert isinstance(caught.value, ConfigError)
    with pytest.raises(SampleSettingError, match="days"):
        SampleSettings(days=0.01)  # not whole hours


@pytest.mark.slow
def test_cli_run_with_the_same_seed_repeats_the_sample_exactly(
    tiny_run: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    args = ["sample", "--out", str(tmp_path), "--start", "2020-01-31T22", "--days", str(1 / 24)]
    args += ["--spinup-days", "1", "--resolution", "5", "--truncation", "21", "--layers", "8"]
    result = CliRunner().invoke(app, [*args, "--seed", str(TINY.seed), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    names = {Path(path).name for path in summary["files"]}
    assert names == {f"era5_{name}_y2020_m01.grib" for name in SAMPLE_FIELDS} | {"sample.json"}
    assert summary["total_bytes"] == sum(summary["files"].values())
    for name in SAMPLE_FIELDS:
        again = open_field(tmp_path, name, 1).values
        np.testing.assert_array_equal(again, open_field(tiny_run[0], name, 1).isel(time=0).values)


def test_cli_rejects_bad_options_by_name(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["sample", "--out", str(tmp_path), "--resolution", "7"])
    assert isinstance(result.exception, ConfigError)
    assert "--resolution" in str(result.exception)
    result = CliRunner().invoke(app, ["sample", "--out", str(tmp_path), "--start", "soon"])
    assert isinstance(result.exception, ConfigError)
    assert "--start" in str(result.exception)
