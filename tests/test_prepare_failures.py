"""Bad input, interrupted runs, damaged stores, full and read-only disks: one clear line, a
non-zero exit code, and an intact store."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import eccodes
import numpy as np
import pytest
from filelock import FileLock

from atmorep_core.data.prepare import prepare
from atmorep_core.engine.inputs import read_window
from atmorep_core.errors import StoreError
from atmorep_core.io.store import Store
from tests.fingerprint import changes, tree_fingerprint
from tests.helpers import (
    assert_same_store,
    grib_messages,
    mounted_tmpfs,
    run_cli,
    shared_file,
    store_fingerprint,
    write_messages,
)
from tests.killer import INGEST_FAULT_POINTS, run_killed

T2M = "era5/era5-t2m-uk-2019-03-01to24.grib"


@pytest.fixture(scope="module")
def t2m_parts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The real t2m file cut into pieces: two halves, a file with a gap, an overlap."""
    folder = tmp_path_factory.mktemp("parts")
    messages = grib_messages(shared_file(T2M))
    return {
        "first": write_messages(folder / "first.grib", messages[:300]),
        "second": write_messages(folder / "second.grib", messages[300:]),
        "late": write_messages(folder / "late.grib", messages[310:]),
        "overlap": write_messages(folder / "overlap.grib", messages[290:]),
        "holed": write_messages(folder / "holed.grib", messages[:5] + messages[6:48]),
        "twice": write_messages(folder / "twice.grib", messages[:24] + messages[23:24]),
    }


def _prepared(tmp_path: Path, *files: Path) -> Path:
    store = tmp_path / "s.zarr"
    result = run_cli("prepare", *map(str, files), "--store", str(store), "--json")
    assert result.returncode == 0, result.stderr
    return store


def _fails(expected_code: int, *args: str) -> str:
    result = run_cli(*args)
    assert result.returncode == expected_code, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


def _no_leftovers(store: Path) -> None:
    siblings = sorted(p.name for p in store.parent.iterdir() if p.name.startswith(store.name))
    assert siblings in ([store.name], [store.name, store.name + ".lock"]), siblings


def test_corrupted_file_names_it_and_leaves_store_unchanged(
    tmp_path: Path, t2m_parts: dict[str, Path]
) -> None:
    store = _prepared(tmp_path, t2m_parts["first"])
    before = store_fingerprint(store)
    bad = shared_file("bad/era5-levels-corrupted.grib")
    line = _fails(3, "prepare", str(bad), "--store", str(store))
    assert "era5-levels-corrupted.grib" in line and "corrupted or truncated" in line
    after = store_fingerprint(store)
    assert sorted(before) == sorted(after)
    _no_leftovers(store)


def test_corrupted_file_creates_no_store(tmp_path: Path) -> None:
    bad = shared_file("bad/era5-levels-corrupted.grib")
    _fails(3, "prepare", str(bad), "--store", str(tmp_path / "new.zarr"))
    assert not (tmp_path / "new.zarr").exists()


@pytest.mark.parametrize(
    ("part", "code", "words"),
    [
        ("late", 3, "time steps from 2019-03-13T12:00:00 are missing"),
        ("overlap", 3, "duplicate times"),
    ],
)
def test_appends_must_continue_the_time_axis(
    tmp_path: Path, t2m_parts: dict[str, Path], part: str, code: int, words: str
) -> None:
    store = _prepared(tmp_path, t2m_parts["first"])
    before = store_fingerprint(store)
    assert words in _fails(code, "prepare", str(t2m_parts[part]), "--store", str(store))
    assert_same_fingerprints(before, store_fingerprint(store))


def assert_same_fingerprints(a: dict[str, object], b: dict[str, object]) -> None:
    assert sorted(a) == sorted(b)
    assert all(str(a[k]) == str(b[k]) for k in a)


def test_missing_hours_and_duplicates_inside_a_file(
    tmp_path: Path, t2m_parts: dict[str, Path]
) -> None:
    line = _fails(3, "prepare", str(t2m_parts["holed"]), "--store", str(tmp_path / "a.zarr"))
    assert "misses time step(s) 2019-03-01T05:00:00" in line
    line = _fails(3, "prepare", str(t2m_parts["twice"]), "--store", str(tmp_path / "b.zarr"))
    assert "duplicate t2m level 0 at 2019-03-01T23:00:00" in line
    assert not (tmp_path / "a.zarr").exists() and not (tmp_path / "b.zarr").exists()


def test_grid_mismatch_and_missing_levels(tmp_path: Path, t2m_parts: dict[str, Path]) -> None:
    store = _prepared(tmp_path, t2m_parts["first"])
    members = shared_file("era5/era5-levels-members.grib")
    line = _fails(4, "prepare", str(members), "--store", str(store))
    assert "does not match the store's grid" in line and "61 x 120" in line
    line = _fails(
        3, "prepare", str(members), "--store", str(tmp_path / "x.zarr"), "--levels", "500,700"
    )
    assert "lacks level(s) 700" in line


def test_missing_values_and_unknown_parameters(tmp_path: Path) -> None:
    # Only fields that allow missing values (precipitation) take bitmaps; t2m must be complete.
    message = grib_messages(shared_file(T2M))[0]
    handle = eccodes.codes_new_from_message(message)
    values = eccodes.codes_get_values(handle)
    values[:3] = 9999.0
    eccodes.codes_set(handle, "bitmapPresent", 1)
    eccodes.codes_set(handle, "missingValue", 9999.0)
    eccodes.codes_set_values(handle, values)
    holed = write_messages(tmp_path / "holed.grib", [eccodes.codes_get_message(handle)])
    eccodes.codes_release(handle)
    line = _fails(3, "prepare", str(holed), "--store", str(tmp_path / "p.zarr"))
    assert "3 missing values" in line and "the store needs complete fields" in line
    handle = eccodes.codes_new_from_message(message)
    eccodes.codes_set(handle, "paramId", 3)  # potential temperature: not in the catalogue
    unknown = write_messages(tmp_path / "unknown.grib", [eccodes.codes_get_message(handle)])
    eccodes.codes_release(handle)
    line = _fails(3, "prepare", str(unknown), "--store", str(tmp_path / "u.zarr"))
    assert "unknown parameter" in line and "paramId 3" in line
    assert "no such file" in _fails(3, "prepare", str(tmp_path / "nope.grib"), "--store", "x.zarr")


def test_a_locked_store_is_refused(tmp_path: Path, t2m_parts: dict[str, Path]) -> None:
    store = tmp_path / "s.zarr"
    with FileLock(str(tmp_path / "s.zarr.lock")):
        line = _fails(5, "prepare", str(t2m_parts["first"]), "--store", str(store))
    assert "another atmorep run" in line and not store.exists()


@pytest.mark.slow
@pytest.mark.parametrize("fault_point", [1, 2, 3, 4, 5])
def test_killed_ingest_resumes_to_the_same_store(
    tmp_path: Path, t2m_parts: dict[str, Path], fault_point: int
) -> None:
    """Fault points: 1-3 inside the first file's ingest (new store), 4-5 inside the second's."""
    first, second = str(t2m_parts["first"]), str(t2m_parts["second"])
    reference = _prepared(tmp_path / "ref", t2m_parts["first"], t2m_parts["second"])
    store = tmp_path / "killed.zarr"
    killed = run_killed(
        fault_point, INGEST_FAULT_POINTS, "prepare", first, second, "--store", str(store)
    )
    assert killed.returncode == -9, killed.stderr
    assert store.with_name("killed.zarr.journal").exists()
    resumed = run_cli("prepare", first, second, "--store", str(store), "--json")
    assert resumed.returncode == 0, resumed.stderr
    statuses = [r["status"] for r in json.loads(resumed.stdout)]
    assert statuses == (["ingested", "ingested"] if fault_point <= 3 else ["skipped", "ingested"])
    assert_same_store(reference, store)
    _no_leftovers(store)


def test_an_ingest_passes_three_fault_points_per_file_of_one_field(
    tmp_path: Path, t2m_parts: dict[str, Path]
) -> None:
    """The kill trials above reach every fault point: 3 per file (data, statistics, source)."""
    first, second = str(t2m_parts["first"]), str(t2m_parts["second"])
    store = str(tmp_path / "s.zarr")
    counted = run_killed(0, INGEST_FAULT_POINTS, "prepare", first, second, "--store", store)
    assert counted.returncode == 0, counted.stderr
    assert counted.stderr.splitlines()[-1] == "events: 6"


def test_info_reports_the_store(tmp_path: Path, t2m_parts: dict[str, Path]) -> None:
    store = _prepared(tmp_path, t2m_parts["first"], t2m_parts["second"])
    result = run_cli("info", str(store), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    (field,) = summary["fields"]
    assert field["name"] == "t2m" and field["times"] == 576 and field["time_step_hours"] == 1.0
    assert field["first_time"] == "2019-03-01T00:00:00" and field["months"] == [201903]
    assert summary["sources"] == 2 and summary["grid"]["nlat"] == 33
    assert 270 < field["levels"][0]["mean"] < 290 and summary["size_bytes"] > 0
    table = run_cli("info", str(store), env={"COLUMNS": "200"})
    assert table.returncode == 0 and "t2m" in table.stdout and "2019-03-24T23:00:00" in table.stdout
    assert "not an atmorep store" in _fails(4, "info", str(tmp_path))


def test_nan_values_are_refused_and_no_store_is_left(tmp_path: Path) -> None:
    messages = []
    for index, message in enumerate(grib_messages(shared_file(T2M))[:3]):
        handle = eccodes.codes_new_from_message(message)
        eccodes.codes_set(handle, "edition", 2)
        eccodes.codes_set(handle, "packingType", "grid_ieee")  # IEEE floats can carry a NaN
        if index == 1:
            values = eccodes.codes_get_values(handle)
            values[100] = np.nan
            eccodes.codes_set_values(handle, values)
        messages.append(eccodes.codes_get_message(handle))
        eccodes.codes_release(handle)
    nan_file = write_messages(tmp_path / "nan.grib", messages)
    store = tmp_path / "s.zarr"
    line = _fails(3, "prepare", str(nan_file), "--store", str(store))
    assert "NaN or infinite values at 2019-03-01T01:00:00" in line
    assert not store.exists() and not store.with_name("s.zarr.journal").exists()


@pytest.fixture(scope="module")
def first_store(tmp_path_factory: pytest.TempPathFactory, t2m_parts: dict[str, Path]) -> Path:
    return _prepared(tmp_path_factory.mktemp("first"), t2m_parts["first"])


def _copy_store(store: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copytree(store, folder / store.name))


@pytest.mark.parametrize(
    ("damaged", "how", "named"),
    [
        ("zarr.json", "corrupt", "s.zarr: corrupt zarr.json"),
        ("t2m/zarr.json", "corrupt", "s.zarr/t2m: corrupt zarr.json"),
        ("t2m/zarr.json", "missing", "s.zarr/t2m: no zarr.json"),
        ("t2m/data/zarr.json", "corrupt", "s.zarr/t2m/data: corrupt zarr.json"),
        ("t2m/time/zarr.json", "missing", "s.zarr/t2m/time: no zarr.json"),
        ("t2m/stats/local_m2/zarr.json", "corrupt", "s.zarr/t2m/stats/local_m2: corrupt"),
    ],
)
def test_damaged_metadata_is_one_line_for_readers_and_prepare(
    tmp_path: Path,
    t2m_parts: dict[str, Path],
    first_store: Path,
    damaged: str,
    how: str,
    named: str,
) -> None:
    store = _copy_store(first_store, tmp_path)
    if how == "corrupt":
        (store / damaged).write_text('{"zarr_format": 3, "node_type": ')
    else:
        (store / damaged).unlink()
    before = tree_fingerprint(tmp_path)
    assert named in _fails(4, "info", str(store))
    assert named in _fails(4, "prepare", str(t2m_parts["second"]), "--store", str(store))
    with pytest.raises(StoreError, match=named):
        Store.open(store)
    assert not changes(before, tree_fingerprint(tmp_path))


def test_paths_with_dot_dot_reach_no_library_unresolved(
    tmp_path: Path, t2m_parts: dict[str, Path]
) -> None:
    """The store layer resolves paths itself (tensorstore refuses '..'), whoever calls it."""
    (tmp_path / "a").mkdir()
    roundabout = tmp_path / "a" / ".." / "s.zarr"
    prepare([t2m_parts["first"]], roundabout)
    store = Store.open(roundabout)
    assert store.path == tmp_path / "s.zarr"
    times = store.field("t2m").times[:2]
    values = read_window(store, "t2m", (0,), times, slice(0, 3), np.arange(4))
    assert values.shape == (1, 2, 3, 4) and np.isfinite(values).all()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "disk", "8m") as point:
        yield point


def _fill(disk: Path, leave: int) -> None:
    """Take all but `leave` bytes of the disk's free space."""
    status = os.statvfs(disk)
    (disk / "filler").write_bytes(b"\0" * (status.f_bavail * status.f_frsize - leave))


def test_a_full_disk_is_one_line_and_leaves_the_store_as_it_was(
    small_disk: Path, t2m_parts: dict[str, Path], first_store: Path
) -> None:
    store = _copy_store(first_store, small_disk)
    _fill(small_disk, 40 << 10)
    before = tree_fingerprint(small_disk)
    line = _fails(7, "prepare", str(t2m_parts["second"]), "--store", str(store))
    assert line.startswith(f"error: cannot write {store}/") and "No space left on device" in line
    assert not changes(before, tree_fingerprint(small_disk))  # no journal, no partial chunk
    (small_disk / "filler").unlink()
    resumed = run_cli("prepare", str(t2m_parts["second"]), "--store", str(store), "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(run_cli("info", str(store), "--json").stdout)["fields"][0]["times"] == 576


def test_a_full_disk_leaves_no_new_store(small_disk: Path, t2m_parts: dict[str, Path]) -> None:
    _fill(small_disk, 40 << 10)
    before = tree_fingerprint(small_disk)
    line = _fails(7, "prepare", str(t2m_parts["first"]), "--store", str(small_disk / "new.zarr"))
    assert "No space left on device" in line
    assert not changes(before, tree_fingerprint(small_disk))


def test_a_read_only_store_is_one_line_for_prepare_and_readable(
    small_disk: Path, t2m_parts: dict[str, Path], first_store: Path
) -> None:
    store = _copy_store(first_store, small_disk)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    before = tree_fingerprint(small_disk)
    line = _fails(7, "prepare", str(t2m_parts["second"]), "--store", str(store))
    assert line == f"error: cannot write {store}.lock: Read-only file system"
    shown = run_cli("info", str(store), "--json")  # readers write nothing
    assert shown.returncode == 0 and json.loads(shown.stdout)["fields"][0]["times"] == 300
    assert not changes(before, tree_fingerprint(small_disk))
