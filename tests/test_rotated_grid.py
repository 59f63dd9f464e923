"""Rotated-pole grids: coordinates against eccodes, GRIB2 / NetCDF round trips, named grids.

The reference for coordinates is eccodes' own `latitudes` / `longitudes` of the real COSMO-D2
and Met Office NAE files. eccodes rounds each coordinate to microdegrees through a float32
(`roundf`), so its values are exact only to half a float32 step of the value in microdegrees:
4e-6 degrees at 90 degrees. Ours are float64; the comparison allows that rounding, at least 1e-6.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import yaml
from matplotlib.image import imread

from atmorep_core.errors import ConfigError, InputDataError
from atmorep_core.grid import LatLonGrid
from atmorep_core.io.grib_products import write_grib
from atmorep_core.io.netcdf import product_dataset, write_netcdf
from atmorep_core.io.product import Product, ProductField
from atmorep_core.io.product_read import read_product
from atmorep_core.plotting import plot_maps, rotated_plot_longitudes
from atmorep_core.regrid import regrid_grid
from atmorep_core.rotated_grid import (
    RotatedGrid,
    from_grib,
    named_grids,
    rotate,
    target_grid,
    unrotate,
)
from tests.helpers import open_cfgrib, read_grib, shared_file

COSMO_D2 = "regional/cosmo-d2-t2m-rotated-20180808T18-step6.grib2"  # southern pole -40 / 10
NAE = "regional/ukmo-nae-t1000-rotated-20090507T00.grib2"  # southern pole -37.5 / 332.467
REAL_FILES = pytest.mark.parametrize("relative", [COSMO_D2, NAE], ids=["cosmo-d2", "nae"])
INIT = datetime(2021, 3, 14, 12)
SMALL = RotatedGrid.regular((-40.0, 10.0), (-1.0, -2.0), (0.25, 0.25), (9, 13))


def eccodes_coordinates(path: Path) -> tuple[np.ndarray, np.ndarray]:
    (message,) = read_grib(path, ("gridType",))
    assert message["gridType"] == "rotated_ll"
    return message["lats"], message["lons"]


def assert_same_points(grid: RotatedGrid, lats: np.ndarray, lons: np.ndarray) -> None:
    assert grid.shape == lats.shape == lons.shape
    for ours, theirs in ((grid.lats, lats), (grid.lons, lons)):
        step = np.spacing(np.float32(np.abs(theirs) * 1e6)).astype(np.float64) / 1e6
        allowed = np.maximum(1e-6, step / 2) + 1e-9
        difference = np.abs((ours - theirs + 180.0) % 360.0 - 180.0)  # longitudes wrap
        assert np.all(difference <= allowed), float(difference.max())


def field_on(grid: RotatedGrid | LatLonGrid, members: int = 2, steps: int = 1) -> ProductField:
    lats = grid.lats if isinstance(grid, RotatedGrid) else grid.lats[:, None]
    pattern = 280.0 + 10.0 * np.cos(np.radians(lats)) * np.ones(grid.shape)
    noise = np.random.default_rng(0).normal(0.0, 1.0, (members, steps, 1, *grid.shape))
    return ProductField("t2m", "surface", (0,), grid, (pattern + noise).astype(np.float32))


@REAL_FILES
def test_coordinates_match_eccodes_point_by_point(relative: str) -> None:
    path = shared_file(relative)
    grid = from_grib(path)
    assert_same_points(grid, *eccodes_coordinates(path))
    # Our rotation is exact both ways: back to the rotated axes within 1e-9 degrees.
    rlat, rlon = rotate(grid.lats, grid.lons, grid.south_pole_lat, grid.south_pole_lon)
    np.testing.assert_allclose(rlat, np.broadcast_to(grid.rlats[:, None], grid.shape), atol=1e-9)
    turns = (rlon - grid.rlons[None, :] + 180.0) % 360.0 - 180.0
    np.testing.assert_allclose(turns, 0.0, atol=1e-9)


def test_real_grids_as_their_headers_give_them() -> None:
    cosmo, nae = from_grib(shared_file(COSMO_D2)), from_grib(shared_file(NAE))
    assert (cosmo.south_pole_lat, cosmo.south_pole_lon, cosmo.shape) == (-40.0, 10.0, (716, 651))
    assert (cosmo.rlat_first, cosmo.rlat_last, cosmo.rlat_step) == (-6.3, 8.0, 0.02)
    assert (cosmo.rlon_first, cosmo.rlon_last) == (-7.5, 5.5)  # 352.5 .. 5.5 in the header
    assert cosmo.north_pole == (40.0, -170.0)
    assert nae.shape == (360, 600) and nae.south_pole_lon == pytest.approx(332.46698 - 360.0)
    # The NAE header's j increment (0.109998) misses its last row by 0.0007 degrees; eccodes
    # (and so we) step by the increment and pin the last row to the header's last latitude.
    assert nae.rlats[-1] == 19.419996
    assert nae.rlats[-2] == pytest.approx(-20.069997 + 358 * 0.109998)


@REAL_FILES
def test_grib2_on_a_real_grid_gives_the_original_points(relative: str, tmp_path: Path) -> None:
    original = shared_file(relative)
    grid = from_grib(original)
    product = Product(INIT, (6,), (field_on(grid),))
    path = tmp_path / "product.grib2"
    assert write_grib(product, path) == 2
    messages = read_grib(path, ("gridType", "latitudeOfSouthernPoleInDegrees", "number"))
    before_lats, before_lons = eccodes_coordinates(original)
    values = product.fields[0].values[:, 0, 0]
    for member, message in enumerate(messages):
        assert message["gridType"] == "rotated_ll"
        np.testing.assert_array_equal(message["lats"], before_lats)
        np.testing.assert_array_equal(message["lons"], before_lons)
        np.testing.assert_allclose(message["values"], values[member], atol=5e-4)
    dataset = open_cfgrib(path)
    assert dataset["t2m"].dims == ("number", "y", "x")
    np.testing.assert_array_equal(dataset["latitude"].values, before_lats)
    back = read_product(path)
    assert back.fields[0].grid == grid
    np.testing.assert_allclose(back.fields[0].values, product.fields[0].values, atol=5e-4)


def test_netcdf_round_trip_is_exact_and_cf(tmp_path: Path) -> None:
    nae = from_grib(shared_file(NAE))
    regular = LatLonGrid(58.0, -0.25, 33, -10.0, 0.25, 49)
    other = ProductField("msl", "surface", (0,), regular, field_on(regular).values + 1e5)
    product = Product(INIT, (6,), (field_on(nae), other), attributes={"source": "test"})
    path = tmp_path / "product.nc"
    write_netcdf(product, path)
    back = read_product(path)
    assert (back.init, back.steps_hours, dict(back.attributes)) == (INIT, (6,), {"source": "test"})
    assert [f.grid for f in back.fields] == [nae, regular]
    for read, written in zip(back.fields, product.fields, strict=True):
        np.testing.assert_array_equal(read.values, written.values)
    dataset = product_dataset(product)
    assert dataset["t2m"].dims == ("time", "realization", "rlat", "rlon")
    assert dataset["t2m"].attrs["grid_mapping"] == "rotated_pole"
    assert dataset["t2m"].encoding["coordinates"].endswith(" latitude longitude")
    mapping = dataset["rotated_pole"].attrs
    assert mapping["grid_mapping_name"] == "rotated_latitude_longitude"
    assert (mapping["grid_north_pole_latitude"], mapping["grid_north_pole_longitude"]) == (
        37.5,
        152.46698,
    )
    assert dataset["rlat"].attrs["standard_name"] == "grid_latitude"
    assert dataset["rlon"].attrs["standard_name"] == "grid_longitude"
    np.testing.assert_array_equal(dataset["latitude"].values, nae.lats)
    assert dataset["msl"].dims == ("time", "realization", "latitude_2", "longitude_2")


def test_cosmo_rea6_is_the_published_grid_over_europe(tmp_path: Path) -> None:
    grid = target_grid("cosmo-rea6")
    assert grid.shape == (824, 848)
    assert grid.north_pole == (39.25, -162.0)
    assert (grid.rlat_step, grid.rlon_step) == (0.055, pytest.approx(0.055))
    # Rotated (0, 0) is 90 degrees from the rotated north pole along the meridian 18 E, which
    # is also the rotated meridian 0: rotated (rlat, 0) is (50.75 + rlat, 18) by hand.
    lat, lon = unrotate(np.array([0.0, -23.403]), np.zeros(2), -39.25, 18.0)
    np.testing.assert_allclose(lat, [50.75, 27.347], atol=1e-9)
    np.testing.assert_allclose(lon, [18.0, 18.0], atol=1e-9)
    # The corners: the Canaries' latitude in the south-west, the Urals in the north-east.
    corners = [(0, 0), (0, -1), (-1, 0), (-1, -1)]
    found = [(round(grid.lats[c], 2), round(grid.lons[c], 2)) for c in corners]
    assert found == [(21.95, -10.08), (25.08, 36.43), (60.2, -44.67), (66.7, 65.06)]
    # Europe inside: Lisbon, Reykjavik, Helsinki, Athens, and London near the middle.
    cities = np.array([(38.7, -9.1), (64.1, -21.9), (60.2, 24.9), (38.0, 23.7), (51.5, -0.1)])
    rlat, rlon = rotate(cities[:, 0], cities[:, 1], grid.south_pole_lat, grid.south_pole_lon)
    assert np.all((grid.rlats[0] < rlat) & (rlat < grid.rlats[-1]))
    assert np.all((grid.rlons[0] < rlon) & (rlon < grid.rlons[-1]))
    # Written as GRIB2, eccodes agrees with our points.
    path = tmp_path / "rea6.grib2"
    write_grib(Product(INIT, (0,), (field_on(grid, members=1),)), path)
    assert_same_points(grid, *eccodes_coordinates(path))


def test_a_grid_is_taken_from_a_rotated_grib_file_only() -> None:
    assert target_grid(shared_file(COSMO_D2)) == from_grib(shared_file(COSMO_D2))
    regular = shared_file("era5/era5-t2m-uk-2019-03-01to24.grib")
    with pytest.raises(InputDataError, match="its grid is regular_ll, not a rotated-pole") as error:
        target_grid(regular)
    assert "\n" not in str(error.value) and str(regular) in str(error.value)
    with pytest.raises(InputDataError, match="no such GRIB file"):
        target_grid("missing.grib2")
    with pytest.raises(ConfigError, match="unknown grid 'cosmo-rea7': known grids are cosmo-rea6"):
        target_grid("cosmo-rea7")


def test_a_broken_named_grid_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "grids.yaml"
    entry = {"south_pole": {"lat": -40, "lon": 10}, "first": {"rlat": 0, "rlon": 0}}
    path.write_text(yaml.safe_dump({"grids": {"mine": entry}}))
    with pytest.raises(ConfigError, match=r"grid 'mine': no key 'step'"):
        named_grids(path)


def test_a_grid_mismatch_is_one_line_naming_the_grid() -> None:
    values = np.zeros((1, 1, 1, 13, 9), dtype=np.float32)  # rows and columns swapped
    with pytest.raises(ValueError) as error:
        ProductField("t2m", "surface", (0,), SMALL, values)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("t2m: values are 13 x 9 points, not those of the grid")
    assert "rotated pole 9 x 13 points" in message


def test_regrid_a_smooth_lat_lon_field_onto_a_rotated_grid() -> None:
    def smooth(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        la, lo = np.radians(lat), np.radians(lon)
        return 280 + 15 * np.cos(la) ** 2 + 5 * np.sin(2 * lo) * np.cos(la) + 2 * np.sin(3 * la)

    target = from_grib(shared_file(COSMO_D2))  # 43 .. 58 N, 4 W .. 21 E
    source = LatLonGrid(60.0, -0.25, 77, -6.0, 0.25, 113)  # 60 .. 41 N, 6 W .. 22 E
    lat, lon = np.meshgrid(source.lats, source.lons, indexing="ij")
    regridded = regrid_grid(smooth(lat, lon)[None], source, target)[0]
    assert np.abs(regridded - smooth(target.lats, target.lons)).max() < 0.005  # K
    too_small = LatLonGrid(55.0, -0.25, 21, 0.0, 0.25, 21)
    beyond = r"no source points .* \(target: rotated pole 716 x 651"
    with pytest.raises(InputDataError, match=beyond):
        regrid_grid(np.zeros(too_small.shape), too_small, target)


def test_maps_of_a_rotated_product(tmp_path: Path) -> None:
    product = Product(INIT, (6,), (field_on(SMALL),))
    (path,) = plot_maps(product, tmp_path)
    assert imread(path).shape[:2] == (450, 1400)
    lons = rotated_plot_longitudes(SMALL)
    assert np.all(np.abs(np.diff(lons, axis=1)) < 1.0)  # continuous, no turn in the middle
