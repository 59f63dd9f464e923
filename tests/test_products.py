"""Product writers: GRIB2 read back by eccodes and cfgrib, CF NetCDF by xarray, PNG maps.

Packing error accepted for GRIB: simple packing with 16 bits returns each value within
(max - min) / (2**16 - 1) of what was written, per 2-D field, plus float32 rounding in cfgrib.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from matplotlib.image import imread

from atmorep_core.errors import FileSystemError
from atmorep_core.grid import LatLonGrid
from atmorep_core.io.grib_products import write_grib
from atmorep_core.io.netcdf import write_netcdf
from atmorep_core.io.product import Product, ProductField
from atmorep_core.plotting import DPI, PANEL_INCHES, plot_longitudes, plot_maps
from tests.helpers import open_cfgrib, read_grib

INIT = datetime(2021, 3, 14, 12)
STEPS = (6, 12)
GLOBAL = LatLonGrid.global_grid(3.0)  # 61 x 120: 90 .. -90, 0 .. 357
UK = LatLonGrid(58.0, -0.25, 33, -10.0, 0.25, 49)  # 58N .. 50N, 10W .. 2E, as ERA5's UK sample


def ensemble(
    seed: int, members: int, levels: int, grid: LatLonGrid, centre: float, spread: float
) -> np.ndarray:
    """(member, step, level, lat, lon) float32: a smooth pattern plus per-member noise."""
    rng = np.random.default_rng(seed)
    lat, lon = np.meshgrid(grid.lats, grid.lons, indexing="ij")
    pattern = centre + spread * (np.cos(np.radians(lat)) + 0.3 * np.sin(np.radians(2 * lon)))
    noise = rng.normal(0.0, spread / 5, (members, len(STEPS), levels, *grid.shape))
    return (pattern + noise).astype(np.float32)


def temperature(members: int) -> ProductField:
    return ProductField(
        "temperature", "hybrid", (96, 137), GLOBAL, ensemble(1, members, 2, GLOBAL, 250.0, 20.0)
    )


def t2m(members: int) -> ProductField:
    # As the store records ERA5's GRIB1 2t: surface, level 0.
    return ProductField("t2m", "surface", (0,), UK, ensemble(2, members, 1, UK, 280.0, 5.0))


def product(members: int, *fields: ProductField, **kwargs: Any) -> Product:
    chosen = fields or (temperature(members), t2m(members))
    return Product(INIT, STEPS, chosen, **kwargs)


def packing_bound(values: np.ndarray) -> float:
    range_bound = float(values.max() - values.min()) / (2**16 - 1)
    return range_bound * 1.0001 + float(np.abs(values).max()) * 2.0**-23  # float32 rounding


def read_eccodes(path: Path) -> list[dict[str, Any]]:
    keys = ("shortName", "paramId", "typeOfLevel", "level", "dataDate", "dataTime", "stepRange")
    keys += ("class", "stream", "type", "edition", "endStep")
    return read_grib(path, keys, ("number", "numberOfForecastsInEnsemble"))


def assert_on_grid(lats: np.ndarray, lons: np.ndarray, grid: LatLonGrid) -> None:
    np.testing.assert_allclose(lats, grid.lats, atol=1e-6)
    np.testing.assert_allclose(np.asarray(lons) % 360.0, grid.lons % 360.0, atol=1e-6)


# --- the data model ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ProductField("nope", "hybrid", (1,), UK, np.zeros((1, 2, 1, 33, 49))), "unknown"),
        (lambda: ProductField("t", "hybrid", (1,), UK, np.zeros((1, 2, 1, 33, 48))), "grid"),
        (lambda: ProductField("t", "hybrid", (1, 2), UK, np.zeros((1, 2, 1, 33, 49))), "levels"),
        (lambda: ProductField("t", "hybrid", (1, 1), UK, np.zeros((1, 2, 2, 33, 49))), "unique"),
        (
            lambda: ProductField("t", "hybrid", (1,), UK, np.full((1, 2, 1, 33, 49), np.nan)),
            "finite",
        ),
        (lambda: ProductField("t", "hybrid", (1,), UK, np.zeros((2, 1, 33, 49))), "member, step"),
        (lambda: Product(INIT, (12, 6), (t2m(1),)), "ascending"),
        (lambda: Product(INIT, (6, 12, 18), (t2m(1),)), "3 lead times"),
        (lambda: Product(INIT, STEPS, (t2m(1), t2m(1))), "not unique"),
        (lambda: Product(INIT, STEPS, (temperature(3), t2m(2))), "2 members"),
        (lambda: Product(INIT, STEPS, (t2m(1),), kind="nowcast"), "kind"),
        (lambda: Product(INIT, STEPS, ()), "at least one field"),
    ],
)
def test_inconsistent_products_are_refused_by_name(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_product_statistics_are_numpy_statistics_over_members() -> None:
    field = t2m(3)
    values = field.values.astype(np.float64)
    assert field.values.dtype == np.float32 and field.members == 3
    np.testing.assert_allclose(field.mean(), values.mean(axis=0), rtol=1e-7)
    np.testing.assert_allclose(field.spread(), values.std(axis=0, ddof=1), rtol=1e-6)
    np.testing.assert_array_equal(t2m(1).spread(), 0.0)
    assert product(3).valid_times == (datetime(2021, 3, 14, 18), datetime(2021, 3, 15, 0))


# --- GRIB2 ------------------------------------------------------------------------------------


def test_ensemble_grib_round_trips_through_eccodes(tmp_path: Path) -> None:
    path = tmp_path / "ens.grib2"
    ensemble_product = product(3)
    count = write_grib(ensemble_product, path, statistics=True)
    records = read_eccodes(path)
    # temperature: 2 steps x 2 levels x (3 members + mean + spread); t2m: 2 steps x 5.
    assert count == len(records) == 30
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left
    expected_levels = {"t": ("hybrid", "temperature"), "2t": ("heightAboveGround", "t2m")}
    for record in records:
        level_type, name = expected_levels[record["shortName"]]
        field = ensemble_product.field_named(name)
        assert (record["typeOfLevel"], record["edition"]) == (level_type, 2)
        assert (record["dataDate"], record["dataTime"]) == (20210314, 1200)
        assert (record["class"], record["stream"], record["numberOfForecastsInEnsemble"]) == (
            "rd",
            "enfo",
            3,
        )
        step = STEPS.index(record["endStep"])
        level = field.levels.index(0 if name == "t2m" else record["level"])
        assert record["level"] == (2 if name == "t2m" else field.levels[level])
        written = {
            "pf": field.values[(record["number"] or 1) - 1, step, level],
            "em": field.mean()[step, level],
            "es": field.spread()[step, level],
        }[record["type"]]
        assert np.abs(record["values"] - written).max() <= packing_bound(written)
        assert_on_grid(record["lats"][:, 0], record["lons"][0], field.grid)
    pf = [
        (r["shortName"], r["endStep"], r["level"], r["number"])
        for r in records
        if r["type"] == "pf"
    ]
    assert pf == [
        (short_name, step, level, number)
        for short_name, levels in (("t", (96, 137)), ("2t", (2,)))
        for step in STEPS
        for level in levels
        for number in (1, 2, 3)
    ]
    assert sum(r["type"] == "em" for r in records) == sum(r["type"] == "es" for r in records) == 6
    assert all(r["number"] is None for r in records if r["type"] != "pf")


def test_ensemble_grib_is_read_by_cfgrib(tmp_path: Path) -> None:
    path = tmp_path / "ens.grib2"
    ensemble_product = product(3)
    write_grib(ensemble_product, path, statistics=True)
    temperature_ds = open_cfgrib(path, dataType="pf", shortName="t")
    t = temperature_ds["t"]
    assert t.dims == ("number", "step", "hybrid", "latitude", "longitude")
    assert t["number"].values.tolist() == [1, 2, 3]
    assert t["hybrid"].values.tolist() == [96, 137]
    assert t["step"].values.tolist() == [np.timedelta64(h, "h").astype("m8[ns]") for h in STEPS]
    assert t["time"].values == np.datetime64(INIT, "ns")
    assert t["valid_time"].values.tolist() == [
        np.datetime64(v, "ns").astype(int) for v in ensemble_product.valid_times
    ]
    assert_on_grid(t["latitude"].values, t["longitude"].values, GLOBAL)
    np.testing.assert_array_equal(t["longitude"].values, np.arange(0.0, 360.0, 3.0))
    written = ensemble_product.field_named("temperature").values
    assert np.abs(t.values - written).max() <= packing_bound(written)

    screen = open_cfgrib(path, dataType="pf", shortName="2t")["t2m"]
    assert screen.dims == ("number", "step", "latitude", "longitude")
    assert float(screen["heightAboveGround"]) == 2.0
    assert_on_grid(screen["latitude"].values, screen["longitude"].values, UK)
    written = ensemble_product.field_named("t2m").values[:, :, 0]
    assert np.abs(screen.values - written).max() <= packing_bound(written)

    mean = open_cfgrib(path, dataType="em", shortName="2t")["t2m"]
    expected = ensemble_product.field_named("t2m").mean()[:, 0]
    assert np.abs(mean.values - expected).max() <= packing_bound(expected)


def test_deterministic_grib_is_a_forecast_without_member_numbers(tmp_path: Path) -> None:
    path = tmp_path / "det.grib2"
    rain = ProductField(
        "total_precip", "surface", (0,), UK, np.abs(ensemble(3, 1, 1, UK, 0.0, 0.002))
    )
    deterministic = product(1, temperature(1), rain)
    # statistics of one member would only repeat it: none are written.
    assert write_grib(deterministic, path, statistics=True) == 2 * 2 + 2
    records = read_eccodes(path)
    assert {(r["class"], r["stream"], r["type"], r["number"]) for r in records} == {
        ("rd", "oper", "fc", None)
    }
    rain_records = [r for r in records if r["shortName"] == "tp"]
    assert [r["stepRange"] for r in rain_records] == ["0-6", "0-12"]
    for record, written in zip(rain_records, rain.values[0, :, 0], strict=True):
        assert np.abs(record["values"] - written).max() <= packing_bound(written)
    t = open_cfgrib(path, shortName="t")["t"]
    assert t.dims == ("step", "hybrid", "latitude", "longitude")
    written = deterministic.field_named("temperature").values[0]
    assert np.abs(t.values - written).max() <= packing_bound(written)


# --- CF NetCDF --------------------------------------------------------------------------------


def test_netcdf_round_trips_members_statistics_and_coordinates(tmp_path: Path) -> None:
    path = tmp_path / "ens.nc"
    provenance = {"checkpoint": "tiny.safetensors", "command": "atmorep forecast"}
    ensemble_product = product(3, attributes=provenance)
    write_netcdf(ensemble_product, path, quantiles=(0.25, 0.5, 0.75))
    assert list(tmp_path.iterdir()) == [path]
    with xr.open_dataset(path) as ds:
        ds.load()
    t, field = ds["temperature"], ensemble_product.field_named("temperature")
    assert t.dims == ("time", "realization", "model_level", "latitude", "longitude")
    assert t.dtype == np.float32
    np.testing.assert_array_equal(t.transpose("realization", "time", ...).values, field.values)
    np.testing.assert_array_equal(
        ds["temperature_mean"].values,
        field.values.mean(axis=0, dtype=np.float64).astype(np.float32),
    )
    np.testing.assert_array_equal(
        ds["temperature_spread"].values,
        field.values.std(axis=0, ddof=1, dtype=np.float64).astype(np.float32),
    )
    quantiles = np.quantile(field.values, [0.25, 0.5, 0.75], axis=0).astype(np.float32)
    assert ds["temperature_quantiles"].dims[:2] == ("time", "quantile")
    np.testing.assert_array_equal(
        ds["temperature_quantiles"].transpose("quantile", "time", ...).values, quantiles
    )
    np.testing.assert_array_equal(
        ds["temperature_quantiles"].sel(quantile=0.5), np.median(field.values, axis=0)
    )
    assert ds["quantile"].values.tolist() == [0.25, 0.5, 0.75]
    assert (
        t.attrs.items()
        >= {
            "units": "K",
            "long_name": "air temperature",
            "standard_name": "air_temperature",
            "GRIB_paramId": 130,
        }.items()
    )
    assert ds["temperature_mean"].attrs["cell_methods"] == "realization: mean"
    assert t.encoding["coordinates"] == "forecast_reference_time step"

    # One level stored as ERA5's surface 0: no level dimension, the GRIB2 product's level
    # (2 m above ground) as a scalar height coordinate; its own grid dimensions.
    screen = ds["t2m"]
    assert screen.dims == ("time", "realization", "latitude_2", "longitude_2")
    np.testing.assert_array_equal(
        screen.values, ensemble_product.field_named("t2m").values[:, :, 0].swapaxes(0, 1)
    )
    assert (screen.attrs["GRIB_typeOfLevel"], screen.attrs["GRIB_level"]) == (
        "heightAboveGround",
        2,
    )
    assert screen.encoding["coordinates"] == "forecast_reference_time step height"
    assert float(ds["height"]) == 2.0
    assert (ds["height"].attrs["units"], ds["height"].attrs["axis"]) == ("m", "Z")

    assert ds["model_level"].values.tolist() == [96, 137]
    assert ds["model_level"].attrs["GRIB_typeOfLevel"] == "hybrid"
    assert ds["model_level"].attrs["standard_name"] == "model_level_number"
    assert ds["realization"].values.tolist() == [1, 2, 3]
    assert ds["realization"].attrs["units"] == "1"
    np.testing.assert_array_equal(ds["latitude"].values, GLOBAL.lats)
    np.testing.assert_array_equal(ds["longitude_2"].values, UK.lons)
    assert (ds["latitude"].attrs["units"], ds["longitude"].attrs["units"]) == (
        "degrees_north",
        "degrees_east",
    )
    assert (ds["latitude_2"].attrs["standard_name"], ds["longitude_2"].attrs["standard_name"]) == (
        "latitude",
        "longitude",
    )
    assert ds["forecast_reference_time"].values == np.datetime64(INIT, "ns")
    assert ds["time"].attrs["standard_name"] == "time"
    assert ds["time"].encoding["units"] == "hours since 2021-03-14T12:00:00"
    assert ds["step"].values.tolist() == [np.timedelta64(h, "h").astype("m8[ns]") for h in STEPS]
    assert ds["step"].dims == ("time",)
    assert ds["time"].values.tolist() == [
        np.datetime64(v, "ns").astype(int) for v in ensemble_product.valid_times
    ]
    assert (
        ds.attrs.items()
        >= {
            "Conventions": "CF-1.10",
            "product_kind": "forecast",
            "init": "2021-03-14T12:00:00",
            "ensemble_members": 3,
            "product_attributes": "checkpoint command",
            **provenance,
        }.items()
    )
    # No clock time, so that a rerun writes the same bytes (the manifest records the run's).
    assert ds.attrs["history"] == "written by atmorep 0.1.0 (run time in the product's manifest)"
    assert {"institution", "source"} <= ds.attrs.keys()


def test_netcdf_of_a_deterministic_product_on_two_level_sets(tmp_path: Path) -> None:
    path = tmp_path / "det.nc"
    z = ProductField(
        "geopotential", "isobaricInhPa", (500, 850), GLOBAL, ensemble(4, 1, 2, GLOBAL, 5e4, 1e3)
    )
    u = ProductField("velocity_u", "isobaricInhPa", (850,), GLOBAL, ensemble(5, 1, 1, GLOBAL, 0, 9))
    write_netcdf(product(1, temperature(1), z, u), path)
    with xr.open_dataset(path) as ds:
        ds.load()
    assert ds["geopotential"].dims == ("time", "realization", "pressure", "latitude", "longitude")
    assert ds["pressure"].values.tolist() == [500, 850]
    assert ds["velocity_u"].dims[2] == "pressure_2"  # another set of pressure levels
    assert ds["pressure_2"].values.tolist() == [850]
    assert (ds["pressure"].attrs["GRIB_typeOfLevel"], ds["pressure"].attrs["units"]) == (
        "isobaricInhPa",
        "hPa",
    )
    np.testing.assert_array_equal(ds["geopotential_spread"].values, 0.0)
    np.testing.assert_array_equal(ds["geopotential_mean"].values, z.values[0])
    np.testing.assert_array_equal(
        ds["geopotential_quantiles"].sel(quantile=0.9).values, z.values[0]
    )
    assert ds["quantile"].values.tolist() == [0.1, 0.5, 0.9]


def test_failed_netcdf_write_leaves_no_temporary_and_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "out.nc"
    path.write_bytes(b"old")
    with pytest.raises(ValueError, match="quantiles"):
        write_netcdf(product(1), path, quantiles=(0.5, 1.5))
    blocked = tmp_path / "dir.nc"
    blocked.mkdir()  # renaming a file onto a directory fails after the temporary is written
    with pytest.raises(FileSystemError, match=f"cannot write {blocked}: Is a directory"):
        write_netcdf(product(1), blocked)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.nc", "out.nc"]


# --- PNG maps ---------------------------------------------------------------------------------


def assert_png(path: Path, panels: int) -> None:
    image = imread(path)
    width, height = PANEL_INCHES
    assert image.shape[:2] == (round(height * DPI), round(width * DPI * panels))
    assert image[..., :3].std() > 0.1  # a map, not a blank page


def test_maps_one_png_per_field_and_step_with_spread_panels(tmp_path: Path) -> None:
    wind = ProductField(
        "velocity_u", "hybrid", (137,), GLOBAL, ensemble(5, 2, 1, GLOBAL, -10.0, 15.0)
    )
    ensemble_product = product(2, temperature(2), t2m(2), wind)
    paths = plot_maps(ensemble_product, tmp_path / "maps", steps=[12], level=96)
    assert [p.name for p in paths] == [
        "temperature_hybrid96_012h.png",
        "t2m_surface0_012h.png",
        "velocity_u_hybrid137_012h.png",
    ]
    assert sorted((tmp_path / "maps").iterdir()) == sorted(paths)  # no temporaries left
    for path in paths:
        assert_png(path, panels=2)


def test_maps_of_a_deterministic_product_and_bad_selections(tmp_path: Path) -> None:
    deterministic = product(1)
    paths = plot_maps(deterministic, tmp_path, fields=["temperature"])
    assert [p.name for p in paths] == [
        "temperature_hybrid137_006h.png",
        "temperature_hybrid137_012h.png",
    ]
    for path in paths:
        assert_png(path, panels=1)
    with pytest.raises(ValueError, match="no field 'msl'"):
        plot_maps(deterministic, tmp_path, fields=["msl"])
    with pytest.raises(ValueError, match="no lead time 18"):
        plot_maps(deterministic, tmp_path, steps=[18])
    with pytest.raises(ValueError, match="no level 105"):
        plot_maps(deterministic, tmp_path, level=105)
    assert len(list(tmp_path.iterdir())) == 2


def test_map_longitudes_are_continuous_for_global_and_regional_grids() -> None:
    np.testing.assert_array_equal(plot_longitudes(GLOBAL), np.arange(0.0, 360.0, 3.0))
    np.testing.assert_allclose(plot_longitudes(UK), np.arange(-10.0, 2.001, 0.25))
    across_greenwich = LatLonGrid(58.0, -0.25, 33, 350.0, 0.25, 49)  # stored as 350 .. 362
    np.testing.assert_allclose(plot_longitudes(across_greenwich), np.arange(-10.0, 2.001, 0.25))
    shifted = LatLonGrid.global_grid(3.0)
    from_dateline = LatLonGrid(shifted.lat_first, shifted.lat_step, 61, 180.0, 3.0, 120)
    assert np.all(np.diff(plot_longitudes(from_dateline)) == 3.0)
