"""Physically impossible values are refused on ingest and on a correction's input, naming the
file, message, level, time, value and range; `--allow-implausible` accepts them."""

from __future__ import annotations

import json
from pathlib import Path

import eccodes
import numpy as np
import pytest

from atmorep_core import fields
from atmorep_core.data.plausibility import RANGES
from atmorep_core.errors import InputDataError
from atmorep_core.io import grib_read
from atmorep_core.io.grib_scan import scan_headers
from atmorep_core.io.store import Store
from atmorep_core.products.correct_input import Need, select
from atmorep_core.units import conversion_factor
from tests.fingerprint import changes, tree_fingerprint
from tests.helpers import SHARED_DATA, grib_messages, run_cli, shared_file, write_messages

T2M = "era5/era5-t2m-uk-2019-03-01to24.grib"  # small fields: values decoded by the scan
COSMO = "regional/cosmo-d2-t2m-rotated-20180808T18-step6.grib2"  # 466k points: decoded on ingest
ML137 = "ifs/ifs-fc-ml137-t-u-v-q-20181114T12-step24.grib2"
RANGE = "160 .. 340 K"


def _changed(message: bytes, value: float, **keys: int) -> bytes:
    """The message with its 8th value set to `value` (and the given keys set first)."""
    handle = eccodes.codes_new_from_message(message)
    for key, setting in keys.items():
        eccodes.codes_set(handle, key, setting)
    values = eccodes.codes_get_values(handle)
    values[7] = value
    eccodes.codes_set_values(handle, values)
    changed: bytes = eccodes.codes_get_message(handle)
    eccodes.codes_release(handle)
    return changed


def _fails(code: int, *args: str) -> str:
    result = run_cli(*args)
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


def test_every_field_has_a_range_around_its_ordinary_values() -> None:
    assert set(RANGES) == {f.name for f in fields.CATALOGUE}
    ordinary = {"temperature": 250.0, "t2m": 288.0, "msl": 101325.0, "lnsp": np.log(101325.0)}
    for name, limits in RANGES.items():
        assert limits.low < limits.high and limits.basis, name
        if name in ordinary:
            assert limits.low < ordinary[name] < limits.high, name


SAMPLES = sorted(
    str(p.relative_to(SHARED_DATA)) for p in SHARED_DATA.rglob("*.grib*") if p.parent.name != "bad"
)


@pytest.mark.parametrize("relative", SAMPLES or [T2M])  # without samples: skipped, with reason
def test_every_real_sample_is_plausible(relative: str) -> None:
    checked = 0
    for header in grib_read.scan(shared_file(relative), keep_values=True):
        field = fields.from_grib(header.short_name, header.param_id)
        values = header.values if header.values is not None else next(grib_read.decode([header]))
        dimensionless = field.units == "~"  # lnsp: eccodes says 'Numeric'
        scale = 1.0 if dimensionless else conversion_factor(header.units, field.units, header.where)
        limits = RANGES[field.name]
        finite = np.asarray(values, dtype=np.float64)[np.isfinite(values)] * scale
        assert limits.low <= finite.min() and finite.max() <= limits.high, header.where
        checked += 1
    assert checked > 0


@pytest.mark.parametrize(("value", "shown"), [(1e30, "1e+30 K"), (-500.0, "-500 K")])
def test_an_implausible_message_is_refused_before_the_store_changes(
    tmp_path: Path, value: float, shown: str
) -> None:
    messages = grib_messages(shared_file(T2M))[:48]
    good = write_messages(tmp_path / "good.grib", messages[:24])
    store = tmp_path / "s.zarr"
    assert run_cli("prepare", str(good), "--store", str(store)).returncode == 0
    bad = [*messages[24:34], _changed(messages[34], value), *messages[35:]]
    absurd = write_messages(tmp_path / "absurd.grib", bad)
    before = tree_fingerprint(tmp_path)
    line = _fails(3, "prepare", str(absurd), "--store", str(store))
    assert "absurd.grib message 11, level 0, 2019-03-02T10:00:00: t2m" in line
    assert f"{shown} is outside the plausible range {RANGE}" in line
    assert "--allow-implausible" in line
    assert not changes(before, tree_fingerprint(tmp_path))
    accepted = run_cli("prepare", str(absurd), "--store", str(store), "--allow-implausible")
    assert accepted.returncode == 0, accepted.stderr
    data = Store.open(store).field("t2m").read("data")  # (time, level, lat, lon)
    assert data.shape[0] == 48 and np.isclose(data[34].flat[7], value, rtol=1e-5)


def test_a_large_field_is_checked_as_it_is_decoded_and_rolled_back(tmp_path: Path) -> None:
    """Fields too large to keep from the scan are checked during the ingest, inside the file's
    transaction: the refusal leaves the store as it was."""
    (message,) = grib_messages(shared_file(COSMO))
    first = write_messages(tmp_path / "t18.grib2", [message])
    store = tmp_path / "rotated.zarr"
    assert run_cli("prepare", str(first), "--store", str(store)).returncode == 0
    next_hour = _changed(message, 1e30, packingType="grid_simple", forecastTime=7)
    absurd = write_messages(tmp_path / "t19.grib2", [next_hour])
    before = tree_fingerprint(tmp_path)
    line = _fails(3, "prepare", str(absurd), "--store", str(store))
    assert "t19.grib2 message 1, level 2, 2018-08-09T01:00:00: t2m 1e+30 K" in line
    assert not changes(before, tree_fingerprint(tmp_path))
    result = run_cli("info", str(store), "--json")
    assert json.loads(result.stdout)["fields"][0]["times"] == 1


def test_a_correction_input_with_an_implausible_value_is_refused(tmp_path: Path) -> None:
    messages = grib_messages(shared_file(ML137))
    target = next(
        i for i, m in enumerate(messages) if _keys(m) == ("t", 137)
    )  # temperature at the lowest model level
    messages[target] = _changed(messages[target], -500.0)
    path = write_messages(tmp_path / "ifs.grib2", messages)
    needs = {"temperature": Need("hybrid", (96, 137)), "velocity_u": Need("hybrid", (7, 137))}
    with pytest.raises(InputDataError) as refused:
        select(path, scan_headers(path), needs)
    assert f"ifs.grib2 message {target + 1}, level 137, 2018-11-15T12:00: temperature -500 K" in (
        str(refused.value)
    )
    selection = select(path, scan_headers(path), needs, allow_implausible=True)
    assert len(selection.messages) == 4  # two fields, two levels, one time
    # The real file is plausible everywhere, its 137 m/s winds at model level 7 included.
    select(shared_file(ML137), scan_headers(shared_file(ML137)), needs)


def _keys(message: bytes) -> tuple[str, int]:
    handle = eccodes.codes_new_from_message(message)
    keys = (str(eccodes.codes_get(handle, "shortName")), int(eccodes.codes_get(handle, "level")))
    eccodes.codes_release(handle)
    return keys


def test_a_grib2_model_level_file_is_prepared_whole_with_its_dimensionless_lnsp(
    tmp_path: Path,
) -> None:
    """GRIB2 tables call lnsp's unit "Numeric", GRIB1's "~": both mean none, nothing to convert."""
    assert conversion_factor("Numeric", "~", "lnsp") == 1.0
    store = tmp_path / "ml137.zarr"
    result = run_cli("prepare", str(shared_file(ML137)), "--store", str(store))
    assert result.returncode == 0, result.stderr
    lnsp = Store.open(store).field("lnsp").read("data")
    # ln of surface pressures between 500 and 1050 hPa over Europe.
    assert np.log(50000) < lnsp.min() < lnsp.max() < np.log(105000)
