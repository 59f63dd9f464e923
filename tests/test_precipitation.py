"""Precipitation in `prepare` and the store: one unit (metres), accumulation periods, bitmap-missing
points kept as NaN that never reach training or products, and non-negativity.

Real files: DWD COSMO-D2 tp in kg m-2 with a bitmap (23,823 missing points, 9999 by default) and
ECMWF IFS tp in metres. Synthetic files (several times, chosen masks) are written with our GRIB
writer and edited with eccodes where DWD's encoding differs (centre, paramId 228228, bitmap).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import eccodes
import numpy as np
import pytest
import torch

from atmorep_core.data.ingest_plan import IngestOptions
from atmorep_core.data.neighbourhood import spatial_range
from atmorep_core.data.prepare import prepare
from atmorep_core.data.sampler import FieldConfig, NeighbourhoodSampler, SamplerConfig
from atmorep_core.data.valid_windows import valid_starts
from atmorep_core.engine.inputs import read_window
from atmorep_core.errors import ConfigError, InputDataError, MissingInputError, StoreError
from atmorep_core.grid import LatLonGrid
from atmorep_core.io.grib_write import GribMessage, encode
from atmorep_core.io.store import Store
from atmorep_core.units import conversion_factor
from tests.helpers import read_grib, run_cli, shared_file, store_fingerprint, write_messages

DWD = "precip/cosmo-d2-tp-20201031T12-step0-12.grib2"
IFS = "precip/ifs-tp-global-1deg-20130325T00-step24.grib"
GRID = LatLonGrid(60.0, -1.0, 20, 0.0, 1.0, 24)  # regional: no wrap-around
FIRST = datetime(2021, 3, 1, 12)  # first valid time of the synthetic files
SIX_HOURS = timedelta(hours=6)


def rain(seed: int, grid: LatLonGrid = GRID) -> np.ndarray:
    return np.abs(np.random.default_rng(seed).normal(0.0, 0.004, grid.shape))  # metres


def rain_messages(
    valid_times: list[datetime],
    accumulation_h: int = 12,
    missing: Callable[[int], np.ndarray] | None = None,
    dwd: bool = False,
    values: Callable[[int], np.ndarray] = rain,
) -> list[bytes]:
    """GRIB2 tp, accumulated over `accumulation_h` up to each valid time; `missing(i)`: bitmap
    mask of message i; `dwd`: centre edzw, paramId 228228 in kg m-2 (the values times 1000)."""
    messages = []
    for i, valid in enumerate(valid_times):
        base = valid - timedelta(hours=accumulation_h)
        field = values(i)
        message = GribMessage("tp", "surface", 0, base, field, GRID, accumulation_h, data_type="fc")
        handle = eccodes.codes_new_from_message(encode(message))
        if dwd:
            eccodes.codes_set(handle, "centre", "edzw")
            eccodes.codes_set(handle, "paramId", 228228)
            eccodes.codes_set_values(handle, (field * 1000.0).ravel())
        if missing is not None:
            flat = eccodes.codes_get_values(handle)
            flat[missing(i).ravel()] = 9999.0  # eccodes' default missingValue
            eccodes.codes_set(handle, "bitmapPresent", 1)
            eccodes.codes_set(handle, "missingValue", 9999.0)
            eccodes.codes_set_values(handle, flat)
        messages.append(eccodes.codes_get_message(handle))
        eccodes.codes_release(handle)
    return messages


def valid_times(n: int, start: datetime = FIRST) -> list[datetime]:
    return [start + i * SIX_HOURS for i in range(n)]


def edge_mask(_: int) -> np.ndarray:
    """Missing at every time: the first 4 columns (outside a radar domain, say)."""
    mask = np.zeros(GRID.shape, dtype=bool)
    mask[:, :4] = True
    return mask


def edge_and_outage(i: int) -> np.ndarray:
    """The edge, plus one point missing only in message 2."""
    mask = edge_mask(i)
    if i == 2:
        mask[10, 15] = True
    return mask


@pytest.fixture(scope="module")
def dwd_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("dwd") / "dwd.zarr"
    prepare([shared_file(DWD)], store)
    return store


@pytest.fixture(scope="module")
def holed_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic DWD-like tp, 8 six-hourly times, missing edge columns and one outage point."""
    folder = tmp_path_factory.mktemp("holed")
    path = write_messages(
        folder / "holed.grib2", rain_messages(valid_times(8), missing=edge_and_outage, dwd=True)
    )
    prepare([path], folder / "holed.zarr")
    return folder / "holed.zarr"


def test_dwd_bitmap_points_are_nan_and_the_rest_equals_eccodes(dwd_store: Path) -> None:
    arrays = Store.open(dwd_store).field("total_precip")
    stored = arrays.read("data")[0, 0]  # (lat, lon) on the file's own rows: 43N first
    (record,) = read_grib(shared_file(DWD), ("bitmapPresent", "units", "paramId"))
    assert (record["units"], record["paramId"]) == ("kg m**-2", 228228)
    decoded = record["values"]  # kg m-2 with 9999 where the bitmap says missing
    with open(shared_file(DWD), "rb") as stream:
        handle = eccodes.codes_grib_new_from_file(stream)
        present = eccodes.codes_get_array(handle, "bitmap").reshape(stored.shape) == 1
        eccodes.codes_release(handle)
    assert int(np.isnan(stored).sum()) == 23_823 == int((~present).sum())
    np.testing.assert_array_equal(np.isnan(stored), ~present)
    assert not (stored == 9999.0).any() and not (stored * 1000.0 == 9999.0).any()
    assert np.nanmax(stored) < 0.5  # metres: no sentinel became half a metre of rain
    expected = (decoded[present] * 1e-3).astype(np.float32)  # kg m-2 = mm -> m
    np.testing.assert_array_equal(stored[present], expected)
    assert arrays.meta.units == "m" and arrays.meta.accumulation_s == 12 * 3600
    assert arrays.times[0] == np.datetime64("2020-11-01T00:00")  # the period's end: 12 UTC + 12 h
    mask = arrays.missing_mask()
    assert mask is not None and mask.shape == (1, 701, 851) and int(mask.sum()) == 23_823


def test_dwd_statistics_leave_missing_points_out(dwd_store: Path) -> None:
    arrays = Store.open(dwd_store).field("total_precip")
    values = arrays.read("data")[:, 0].astype(np.float64)
    mean, std = arrays.global_norm()
    assert mean[0] == pytest.approx(np.nanmean(values), rel=1e-9)
    assert std[0] == pytest.approx(np.nanstd(values), rel=1e-6)
    assert arrays.read("stats/global_count")[0] == 701 * 851 - 23_823
    local_mean, local_std = arrays.local_norm(202011)
    assert np.isfinite(local_mean).all() and np.isfinite(local_std).all()
    present = ~np.isnan(values[0])
    np.testing.assert_allclose(local_mean[0][present], values[0][present], rtol=1e-12)


def test_ifs_metres_and_dwd_kg_per_m2_share_the_store_unit(tmp_path: Path, dwd_store: Path) -> None:
    prepare([shared_file(IFS)], tmp_path / "ifs.zarr")
    ifs = Store.open(tmp_path / "ifs.zarr").field("total_precip")
    dwd = Store.open(dwd_store).field("total_precip")
    assert ifs.meta.units == dwd.meta.units == "m"
    assert (ifs.meta.accumulation_s, dwd.meta.accumulation_s) == (24 * 3600, 12 * 3600)
    (record,) = read_grib(shared_file(IFS), ("units", "paramId", "stepRange"))
    assert (record["units"], record["paramId"], record["stepRange"]) == ("m", 228, "24")
    np.testing.assert_array_equal(ifs.read("data")[0, 0], record["values"].astype(np.float32))
    # By hand: DWD's wettest point is 9.0107 kg m-2 = 9.0107 mm = 0.0090107 m.
    (dwd_record,) = read_grib(shared_file(DWD), ())
    wettest = dwd_record["values"][dwd_record["values"] != 9999.0].max()
    assert wettest == pytest.approx(9.0107, abs=1e-3)
    assert float(np.nanmax(dwd.read("data"))) == pytest.approx(wettest / 1000.0, rel=1e-6)
    with pytest.raises(StoreError, match="does not match the store's grid") as error:
        prepare([shared_file(DWD)], tmp_path / "ifs.zarr")
    assert "\n" not in str(error.value)


def test_synthetic_kg_per_m2_converts_with_factor_1000(tmp_path: Path) -> None:
    path = write_messages(tmp_path / "kg.grib2", rain_messages(valid_times(3), dwd=True))
    prepare([path], tmp_path / "s.zarr")
    stored = Store.open(tmp_path / "s.zarr").field("total_precip").read("data")[:, 0]
    decoded = np.stack([r["values"] for r in read_grib(path, ("units",))])
    assert {r["units"] for r in read_grib(path, ("units",))} == {"kg m**-2"}
    np.testing.assert_allclose(stored * 1000.0, decoded, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(stored, np.stack([rain(i) for i in range(3)]), atol=1e-6)


def test_missing_values_are_counted_per_point_and_time(holed_store: Path) -> None:
    arrays = Store.open(holed_store).field("total_precip")
    data = arrays.read("data")[:, 0].astype(np.float64)  # (time, lat, lon)
    expected = np.stack([edge_and_outage(i) for i in range(8)])
    np.testing.assert_array_equal(np.isnan(data), expected)
    missing = arrays.read("stats/local_missing")  # (month, level, lat, lon)
    np.testing.assert_array_equal(missing[0, 0], expected.sum(axis=0))
    mask = arrays.missing_mask()
    assert mask is not None
    np.testing.assert_array_equal(mask[0], expected.any(axis=0))
    mean, std = arrays.local_norm(202103)
    np.testing.assert_allclose(mean[0, 10, 15], np.nanmean(data[:, 10, 15]), rtol=1e-6)
    np.testing.assert_allclose(std[0, 10, 15], np.nanstd(data[:, 10, 15]), rtol=1e-5)
    assert np.isfinite(mean).all() and np.isfinite(std).all()
    global_mean, global_std = arrays.global_norm()
    assert global_mean[0] == pytest.approx(np.nanmean(data), rel=1e-9)
    assert global_std[0] == pytest.approx(np.nanstd(data), rel=1e-6)


def test_appending_missing_values_equals_one_ingest(tmp_path: Path) -> None:
    messages = rain_messages(valid_times(8), missing=edge_and_outage, dwd=True)
    whole = write_messages(tmp_path / "whole.grib2", messages)
    parts = [write_messages(tmp_path / "a.grib2", messages[:3])]
    parts.append(write_messages(tmp_path / "b.grib2", messages[3:]))
    prepare([whole], tmp_path / "one.zarr")
    prepare(parts[:1], tmp_path / "two.zarr")
    prepare(parts[1:], tmp_path / "two.zarr")
    one, two = (Store.open(tmp_path / n).field("total_precip") for n in ("one.zarr", "two.zarr"))
    np.testing.assert_array_equal(one.read("data"), two.read("data"))
    np.testing.assert_array_equal(one.read("stats/local_missing"), two.read("stats/local_missing"))
    for a, b in zip(one.local_norm(202103), two.local_norm(202103), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-15)
    for a, b in zip(one.global_norm(), two.global_norm(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9)


def sampler_config(tokens: tuple[int, int, int], size: tuple[int, int, int]) -> SamplerConfig:
    field = FieldConfig(name="total_precip", token_count=tokens, token_size=size)
    return SamplerConfig(fields=(field,), reader="zarr")


def test_sampler_never_yields_a_missing_value(holed_store: Path) -> None:
    sampler = NeighbourhoodSampler(Store.open(holed_store), sampler_config((2, 2, 2), (2, 3, 3)))
    positions = sampler.draw_positions(np.random.default_rng(0), 3000)
    mask = edge_and_outage(2)  # every point ever missing
    for t0, lat, lon in positions[:600]:
        sample = sampler.read(int(t0), int(lat), int(lon))
        assert not torch.isnan(sample.tokens["total_precip"]).any()
        assert torch.isfinite(sample.tokens["total_precip"]).all()
    boxes = [mask[lat : lat + 6, lon : lon + 6].any() for _, lat, lon in positions]
    assert not any(boxes)
    lons = positions[:, 2]  # every valid column start is used, none touching the edge or outage
    assert lons.min() == 4 and lons.max() == GRID.nlon - 6
    with pytest.raises(InputDataError, match="total_precip: missing values") as error:
        sampler.read(0, 0, 0)  # a window over the edge columns, asked for by position
    assert "2021-03-01T12:00" in str(error.value) and "\n" not in str(error.value)


def test_paired_targets_keep_clear_of_their_missing_points_and_share_the_period(
    tmp_path: Path, holed_store: Path
) -> None:
    # Model output without gaps against radar-like observations with them (bias correction).
    model = write_messages(tmp_path / "model.grib2", rain_messages(valid_times(8), dwd=True))
    prepare([model], tmp_path / "model.zarr")
    config = sampler_config((2, 2, 2), (2, 3, 3))
    sampler = NeighbourhoodSampler(
        Store.open(tmp_path / "model.zarr"), config, target=Store.open(holed_store)
    )
    positions = sampler.draw_positions(np.random.default_rng(0), 500)
    mask = edge_and_outage(2)
    assert not any(mask[lat : lat + 6, lon : lon + 6].any() for _, lat, lon in positions)
    sample = sampler.read(*(int(v) for v in positions[0]))
    assert sample.targets is not None and torch.isfinite(sample.targets["total_precip"]).all()
    six_hourly = rain_messages(valid_times(8), accumulation_h=6, dwd=True)
    prepare([write_messages(tmp_path / "six.grib2", six_hourly)], tmp_path / "six.zarr")
    with pytest.raises(ConfigError, match=r"total_precip has accumulation_s 43200 in .* but 21600"):
        NeighbourhoodSampler(
            Store.open(tmp_path / "six.zarr"), config, target=Store.open(holed_store)
        )


def test_sampler_names_the_field_when_no_window_is_free(holed_store: Path) -> None:
    config = sampler_config((2, 2, 2), (2, 9, 11))  # 22 of 24 columns: always over the edge
    with pytest.raises(ConfigError, match="avoids the missing values of total_precip") as error:
        NeighbourhoodSampler(Store.open(holed_store), config)
    assert "81 of 480 points missing" in str(error.value)  # the edge's 80 and the outage


@pytest.mark.parametrize("wraps", [False, True])
def test_valid_starts_equal_brute_force(wraps: bool) -> None:
    grid = LatLonGrid.global_grid(15.0) if wraps else GRID
    mask = np.random.default_rng(4).random(grid.shape) < 0.02
    space = spatial_range(grid, 4, 5)
    assert space.wraps == wraps
    columns = (np.arange(grid.nlon + 5) % grid.nlon) if wraps else np.arange(grid.nlon)
    brute = [
        (lat, lon)
        for lat in range(space.lat_starts)
        for lon in range(space.lon_starts)
        if not mask[lat : lat + 4][:, columns[lon : lon + 5]].any()
    ]
    assert valid_starts(mask, 4, 5, space).tolist() == [list(p) for p in brute]


def test_product_inputs_refuse_missing_values(holed_store: Path) -> None:
    store = Store.open(holed_store)
    times = np.array(["2021-03-01T18:00", "2021-03-02T00:00"], dtype="datetime64[s]")
    inside = read_window(store, "total_precip", (0,), times, slice(0, 20), np.arange(16, 24))
    assert inside.shape == (1, 2, 20, 8) and np.isfinite(inside).all()
    with pytest.raises(InputDataError) as error:  # the outage point at 2021-03-02T00
        read_window(store, "total_precip", (0,), times, slice(5, 15), np.arange(10, 20))
    assert not isinstance(error.value, MissingInputError)
    message = str(error.value)
    assert "total_precip" in message and "2021-03-02T00:00" in message and "\n" not in message


def test_accumulation_mismatch_when_extending_is_one_line(tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    prepare([write_messages(tmp_path / "a.grib2", rain_messages(valid_times(3)))], store)
    before = store_fingerprint(store)
    later = valid_times(3, FIRST + 3 * SIX_HOURS)
    longer = write_messages(tmp_path / "b.grib2", rain_messages(later, accumulation_h=24))
    with pytest.raises(StoreError) as error:
        prepare([longer], store)
    message = str(error.value)
    assert "accumulated over 24 h, the store's over 12 h" in message and "\n" not in message
    assert "total_precip" in message and "b.grib2" in message
    after = store_fingerprint(store)
    assert sorted(before) == sorted(after)
    for key, value in before.items():
        np.testing.assert_array_equal(value, after[key], err_msg=key)
    mixed = rain_messages(valid_times(2)) + rain_messages([FIRST + 2 * SIX_HOURS], 24)
    with pytest.raises(InputDataError, match="mixes accumulation periods of 12 h, 24 h"):
        prepare([write_messages(tmp_path / "c.grib2", mixed)], tmp_path / "c.zarr")
    assert not (tmp_path / "c.zarr").exists()


def test_unit_mismatch_when_extending_is_one_line(tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    first = write_messages(tmp_path / "a.grib2", rain_messages(valid_times(2)))
    prepare([first], store)
    # kg m-2 extends a store in metres: converted, not refused.
    later = valid_times(2, FIRST + 2 * SIX_HOURS)
    prepare([write_messages(tmp_path / "b.grib2", rain_messages(later, dwd=True))], store)
    assert len(Store.open(store).field("total_precip").times) == 4
    # A store that holds the field in another unit (another atmorep's) is refused by the CLI.
    group = Store.open(store, writable=True).field("total_precip").group
    group.attrs["units"] = "kg m**-2"
    third = write_messages(
        tmp_path / "c.grib2", rain_messages(valid_times(1, FIRST + 4 * SIX_HOURS))
    )
    result = run_cli("prepare", str(third), "--store", str(store))
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 4 and len(lines) == 1, result.stderr
    assert "total_precip" in lines[0] and "'m'" in lines[0] and "'kg m**-2'" in lines[0]
    with pytest.raises(InputDataError, match="cannot be converted to the store's 'm'"):
        conversion_factor("kg m**-2 s**-1", "m", "x.grib: field total_precip")


def test_packing_noise_below_zero_is_clipped_and_real_negatives_refused(tmp_path: Path) -> None:
    def noisy(i: int) -> np.ndarray:
        field = rain(i)
        field[0, :5] = -1e-9  # what packing can leave at a dry point
        return field

    path = write_messages(tmp_path / "n.grib2", rain_messages(valid_times(2), values=noisy))
    assert min(r["values"].min() for r in read_grib(path, ())) < 0.0
    prepare([path], tmp_path / "n.zarr")
    stored = Store.open(tmp_path / "n.zarr").field("total_precip").read("data")
    assert stored.min() == 0.0 and (stored[:, 0, 0, :5] == 0.0).all()

    def negative(i: int) -> np.ndarray:
        return rain(i) - 0.002  # a difference of accumulations, say: not a precipitation amount

    bad = write_messages(tmp_path / "bad.grib2", rain_messages(valid_times(2), values=negative))
    with pytest.raises(InputDataError, match="total_precip has negative values down to"):
        prepare([bad], tmp_path / "bad.zarr", IngestOptions(fields=("tp",)))
    assert not (tmp_path / "bad.zarr").exists()


def test_info_names_the_accumulation_period_and_the_missing_points(dwd_store: Path) -> None:
    result = run_cli("info", str(dwd_store), "--json")
    assert result.returncode == 0, result.stderr
    (field,) = json.loads(result.stdout)["fields"]
    assert (field["name"], field["units"], field["accumulation_hours"]) == ("total_precip", "m", 12)
    assert field["missing_points"] == 23823
