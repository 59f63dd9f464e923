"""GRIB writer round trips: what we write, eccodes and cfgrib read back, key by key, value by value.

Packing error accepted: simple packing with b bits returns each value within
(max - min) / (2**b - 1) of what was written (plus float32 rounding in cfgrib).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import eccodes
import numpy as np
import pytest

from atmorep_core.errors import InputDataError
from atmorep_core.grid import LatLonGrid
from atmorep_core.io.grib_products import write_grib
from atmorep_core.io.grib_scan import scan_headers
from atmorep_core.io.grib_write import (
    GribMessage,
    GribWriter,
    encode,
    write_messages,
)
from atmorep_core.io.product import Product, ProductField
from atmorep_core.io.product_read import peek_product
from tests.helpers import open_cfgrib, read_grib

GRID = LatLonGrid.global_grid(10.0)  # 19 x 36, 90 .. -90, 0 .. 350
BASE = datetime(2020, 1, 31, 18)


def field(seed: int, centre: float, spread: float, grid: LatLonGrid = GRID) -> np.ndarray:
    return np.random.default_rng(seed).normal(centre, spread, (grid.nlat, grid.nlon))


def packing_error(values: np.ndarray, bits: int = 16) -> float:
    return float(values.max() - values.min()) / (2**bits - 1)


def read_eccodes(path: Path) -> list[dict[str, Any]]:
    keys = ("shortName", "paramId", "typeOfLevel", "level", "dataDate", "dataTime", "step")
    return read_grib(path, (*keys, "stepType", "class", "stream", "type", "edition"))


@pytest.mark.parametrize("edition", [2, 1])
def test_model_levels_round_trip_through_eccodes(tmp_path: Path, edition: int) -> None:
    path = tmp_path / "t.grib"
    values = {level: field(level, 250.0, 20.0) for level in (96, 137)}
    messages = [
        GribMessage("temperature", "hybrid", level, BASE, data, GRID, edition=edition)
        for level, data in values.items()
    ]
    write_messages(path, messages)
    read = read_eccodes(path)
    assert [r["level"] for r in read] == [96, 137]
    for record in read:
        assert (record["shortName"], record["paramId"], record["typeOfLevel"]) == (
            "t",
            130,
            "hybrid",
        )
        assert (record["dataDate"], record["dataTime"], record["step"]) == (20200131, 1800, 0)
        assert (record["class"], record["stream"], record["type"]) == ("ea", "oper", "an")
        assert record["edition"] == edition
        written = values[record["level"]]
        assert np.abs(record["values"] - written).max() <= packing_error(written) * 1.0001
        np.testing.assert_allclose(record["lats"][:, 0], np.linspace(90, -90, 19))
        np.testing.assert_allclose(record["lons"][0], np.arange(0, 360, 10))
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left


def test_hours_and_levels_read_by_cfgrib_as_era5(tmp_path: Path) -> None:
    path = tmp_path / "u.grib"
    hours = [datetime(2020, 1, 31, 22), datetime(2020, 1, 31, 23)]
    data = {(t, lev): field(t.hour + lev, 10.0, 15.0) for t in hours for lev in (96, 105, 137)}
    write_messages(
        path,
        (GribMessage("velocity_u", "hybrid", lev, t, v, GRID) for (t, lev), v in data.items()),
    )
    ds = open_cfgrib(path)
    assert ds["u"].dims == ("time", "hybrid", "latitude", "longitude")
    assert ds["hybrid"].values.tolist() == [96, 105, 137]
    assert ds["time"].values.tolist() == [np.datetime64(t, "ns").astype(int) for t in hours]
    assert ds["step"].values == np.timedelta64(0, "ns")
    np.testing.assert_allclose(ds["latitude"], np.linspace(90, -90, 19))
    np.testing.assert_allclose(ds["longitude"], np.arange(0, 360, 10))
    for (t, lev), written in data.items():
        got = ds["u"].sel(time=np.datetime64(t), hybrid=lev).values
        assert np.abs(got - written).max() <= packing_error(written) * 1.001 + 1e-5


def test_surface_fields_have_their_own_level_types(tmp_path: Path) -> None:
    path = tmp_path / "sfc.grib"
    t2m, msl = field(1, 280.0, 10.0), field(2, 101000.0, 1500.0)
    write_messages(
        path,
        [
            GribMessage("t2m", "heightAboveGround", 2, BASE, t2m, GRID),
            GribMessage("msl", "meanSea", 0, BASE, msl, GRID),
        ],
    )
    first, second = read_eccodes(path)
    assert (first["shortName"], first["typeOfLevel"], first["level"]) == (
        "2t",
        "heightAboveGround",
        2,
    )
    assert (second["shortName"], second["paramId"], second["typeOfLevel"]) == (
        "msl",
        151,
        "meanSea",
    )
    assert np.abs(second["values"] - msl).max() <= packing_error(msl) * 1.0001
    ds = open_cfgrib(path, shortName="2t")
    assert float(ds["heightAboveGround"]) == 2.0
    assert np.abs(ds["t2m"].values - t2m).max() <= packing_error(t2m) * 1.001 + 1e-4


@pytest.mark.parametrize("edition", [2, 1])
def test_ensemble_forecast_member_with_step(tmp_path: Path, edition: int) -> None:
    path = tmp_path / "ens.grib"
    members = {number: field(number, 270.0, 5.0) for number in (1, 5)}
    write_messages(
        path,
        [
            GribMessage(
                "t", "isobaricInhPa", 500, BASE, values, GRID, step_hours=24, number=number,
                ecmwf_class="od", stream="enfo", data_type="pf", edition=edition,
            )
            for number, values in members.items()
        ],
    )  # fmt: skip
    read = read_eccodes(path)
    assert [r["number"] for r in read] == [1, 5]
    assert all(
        (r["step"], r["stream"], r["type"], r["class"]) == (24, "enfo", "pf", "od") for r in read
    )
    ds = open_cfgrib(path)
    assert ds["number"].values.tolist() == [1, 5]
    assert ds["step"].values == np.timedelta64(24, "h")
    assert ds["valid_time"].values == np.datetime64("2020-02-01T18:00")
    assert float(ds["isobaricInhPa"]) == 500.0
    got = ds["t"].sel(number=5).values
    assert np.abs(got - members[5]).max() <= packing_error(members[5]) * 1.001 + 1e-4


def test_accumulated_precipitation_counts_from_the_base_time(tmp_path: Path) -> None:
    path = tmp_path / "tp.grib"
    rain = np.abs(field(3, 0.0, 0.004))
    write_messages(
        path,
        [GribMessage("tp", "surface", 0, BASE, rain, GRID, step_hours=12, data_type="fc")],
    )
    (record,) = read_eccodes(path)
    assert (record["shortName"], record["stepType"], record["step"]) == ("tp", "accum", 12)
    with open(path, "rb") as stream:
        handle = eccodes.codes_grib_new_from_file(stream)
        assert eccodes.codes_get(handle, "stepRange") == "0-12"
        eccodes.codes_release(handle)


def test_more_bits_pack_more_precisely(tmp_path: Path) -> None:
    path = tmp_path / "vo.grib"
    vorticity = field(4, 0.0, 5e-5)
    write_messages(
        path, [GribMessage("vo", "hybrid", 137, BASE, vorticity, GRID, bits_per_value=24)]
    )
    (record,) = read_eccodes(path)
    error = np.abs(record["values"] - vorticity).max()
    assert error <= packing_error(vorticity, bits=24) * 1.0001
    assert error < packing_error(vorticity, bits=16) / 100


def test_a_constant_first_field_does_not_spoil_the_next(tmp_path: Path) -> None:
    # Messages of one parameter and level share a template; a constant one packs with 0 bits.
    varying = field(5, 250.0, 20.0)
    flat = np.full_like(varying, 250.0)
    times = (BASE, datetime(2020, 1, 31, 19))
    write_messages(
        tmp_path / "c.grib",
        [
            GribMessage("t", "hybrid", 96, t, v, GRID)
            for t, v in zip(times, (flat, varying), strict=True)
        ],
    )
    first, second = read_eccodes(tmp_path / "c.grib")
    np.testing.assert_array_equal(first["values"], flat)
    assert second["dataTime"] == 1900
    assert np.abs(second["values"] - varying).max() <= packing_error(varying) * 1.0001


def test_south_to_north_grid_scans_positively(tmp_path: Path) -> None:
    grid = LatLonGrid(-30.0, 15.0, 5, 10.0, 10.0, 4)
    values = np.arange(20.0).reshape(5, 4)  # each row one latitude, south first
    write_messages(tmp_path / "x.grib", [GribMessage("t", "surface", 0, BASE, values, grid)])
    (record,) = read_eccodes(tmp_path / "x.grib")
    np.testing.assert_allclose(record["lats"][:, 0], [-30, -15, 0, 15, 30])
    np.testing.assert_allclose(record["lons"][0], [10, 20, 30, 40])
    np.testing.assert_allclose(record["values"], values, atol=1e-3)


def test_failed_write_leaves_no_file_and_keeps_the_old_one(tmp_path: Path) -> None:
    path = tmp_path / "t.grib"
    write_messages(path, [GribMessage("t", "hybrid", 137, BASE, field(0, 250, 5), GRID)])
    before = path.read_bytes()

    def broken() -> Iterator[GribMessage]:
        yield GribMessage("t", "hybrid", 96, BASE, field(1, 250, 5), GRID)
        raise RuntimeError("source failed half way")

    with pytest.raises(RuntimeError, match="half way"):
        write_messages(path, broken())
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.grib"]


def test_writer_counts_messages(tmp_path: Path) -> None:
    with GribWriter(tmp_path / "a" / "b.grib") as writer:
        for level in (96, 137):
            writer.write(GribMessage("d", "hybrid", level, BASE, field(level, 0, 1e-5), GRID))
    assert writer.count == 2
    assert len(read_eccodes(tmp_path / "a" / "b.grib")) == 2


def test_messages_grib_cannot_express_are_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        GribMessage("t", "hybrid", 1, BASE, np.zeros((3, 3)), GRID)
    with pytest.raises(ValueError, match="non-finite"):
        GribMessage("t", "hybrid", 1, BASE, np.full((GRID.nlat, GRID.nlon), np.nan), GRID)
    with pytest.raises(ValueError, match="level type"):
        GribMessage("t", "sigma", 1, BASE, field(0, 250, 5), GRID)
    # msl lives on meanSea in GRIB2; asking for 'surface' would silently make it sp (paramId 134).
    with pytest.raises(ValueError, match="cannot hold"):
        encode(GribMessage("msl", "surface", 0, BASE, field(0, 1e5, 100), GRID))


def test_global_grid_layout() -> None:
    grid = LatLonGrid.global_grid(2.0)
    assert (grid.nlat, grid.nlon, grid.lat_step, grid.lon_step) == (91, 180, -2.0, 2.0)
    assert (grid.lats[0], grid.lats[-1], grid.lons[-1]) == (90.0, -90.0, 358.0)
    with pytest.raises(ValueError, match="divide"):
        LatLonGrid.global_grid(7.0)


@pytest.mark.parametrize("edition", [2, 1])
def test_one_scan_reads_back_what_was_written(tmp_path: Path, edition: int) -> None:
    """The one header type: identity, times, member, grid, accumulation, place in the file."""
    path = tmp_path / "scan.grib"
    temperature = field(1, 270.0, 5.0)
    rain = np.abs(field(2, 0.0, 0.004))
    write_messages(
        path,
        [
            GribMessage("t", "isobaricInhPa", 500, BASE, temperature, GRID, step_hours=24,
                        number=3, stream="enfo", data_type="pf", edition=edition),
            GribMessage("tp", "surface", 0, BASE, rain, GRID, step_hours=12, data_type="fc",
                        edition=edition),
        ],
    )  # fmt: skip
    first, second = scan_headers(path, read_grids=True, keep_values=True)
    identity = [(h.short_name, h.param_id, h.level_type, h.level) for h in (first, second)]
    assert identity == [("t", 130, "isobaricInhPa", 500), ("tp", 228, "surface", 0)]
    assert (first.index, first.offset, second.index) == (0, 0, 1)
    assert second.offset == len(read_bytes_of_first_message(path))
    assert first.base_time == second.base_time == np.datetime64("2020-01-31T18:00:00")
    assert first.valid_time == np.datetime64("2020-02-01T18:00:00") and first.step_hours == 24
    assert (second.step_hours, second.accumulation_s, first.accumulation_s) == (12, 12 * 3600, None)
    assert (first.member, first.data_type, second.member, second.data_type) == (3, "pf", 0, "fc")
    assert first.grid_type == "regular_ll" and first.grid_key == second.grid_key
    assert isinstance(first.grid, LatLonGrid) and first.grid.matches(GRID)
    assert first.values is not None and first.values.shape == GRID.shape
    assert np.abs(first.values - temperature).max() <= packing_error(temperature) * 1.001 + 1e-4
    assert first.missing == 0 and first.where == "scan.grib message 1"


def read_bytes_of_first_message(path: Path) -> bytes:
    with open(path, "rb") as stream:
        handle = eccodes.codes_grib_new_from_file(stream)
        try:
            return bytes(eccodes.codes_get_message(handle))
        finally:
            eccodes.codes_release(handle)


def test_a_grid_prepare_cannot_read_is_refused_there_and_scanned_for_a_correction(
    tmp_path: Path,
) -> None:
    path = tmp_path / "reduced.grib2"
    handle = eccodes.codes_grib_new_from_samples("reduced_gg_pl_32_grib2")
    try:
        path.write_bytes(bytes(eccodes.codes_get_message(handle)))
    finally:
        eccodes.codes_release(handle)
    with pytest.raises(InputDataError, match=r"reduced\.grib2 message 1: grid type .reduced_gg."):
        scan_headers(path, read_grids=True)
    (header,) = scan_headers(path)
    assert (header.grid_type, header.grid, header.values) == ("reduced_gg", None, None)
    with pytest.raises(ValueError, match="scanned without reading its grid"):
        _ = header.regular_grid


def test_a_file_that_is_not_grib_is_named(tmp_path: Path) -> None:
    path = tmp_path / "empty.grib"
    path.write_bytes(b"no messages here")
    with pytest.raises(InputDataError, match=r"empty\.grib: no GRIB messages in file"):
        scan_headers(path)


def test_a_grib_product_is_peeked_from_its_members_alone(tmp_path: Path) -> None:
    """Base time and fields from the scan's headers; the statistics messages (em, es) are no
    members and do not count."""
    values = np.stack([field(seed, 250.0, 5.0)[None, None] for seed in (1, 2)])  # (M, 1, 1, ..)
    fields = (
        ProductField("temperature", "isobaricInhPa", (500,), GRID, values),
        ProductField("t2m", "surface", (0,), GRID, values + 30.0),
    )
    path = tmp_path / "p.grib2"
    written = write_grib(Product(BASE, (6,), fields), path, statistics=True)
    types = {h.data_type for h in scan_headers(path)}
    assert written == 2 * (2 + 2) and types == {"pf", "em", "es"}
    info = peek_product(path)
    assert (info.init, info.fields, dict(info.attributes)) == (BASE, ("temperature", "t2m"), {})
