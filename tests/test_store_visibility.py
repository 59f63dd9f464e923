"""Readers see only committed data: while another process appends to a store, or after it was
killed in the middle of an append (until the next `prepare` rolls it back), every reader sees the
store as it was before that append: its times, its data and its statistics."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from atmorep_core.data.prepare import prepare
from atmorep_core.engine.inputs import read_window
from atmorep_core.errors import StoreUpdatingError
from atmorep_core.io.store import COMMITTED_TIMES, Store
from tests.helpers import decode_all, grib_messages, run_cli, shared_file, write_messages
from tests.killer import INGEST_FAULT_POINTS, run_killed

T2M = "era5/era5-t2m-uk-2019-03-01to24.grib"  # 576 hourly steps, 33 x 49 points
FIRST = 300  # steps in the base store
PIECE = 23  # steps per file appended by the concurrent writer: 12 files


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    folder = tmp_path_factory.mktemp("parts")
    messages = grib_messages(shared_file(T2M))
    pieces = [
        write_messages(folder / f"piece-{start:03d}.grib", messages[start : start + PIECE])
        for start in range(FIRST, len(messages), PIECE)
    ]
    return {
        "first": [write_messages(folder / "first.grib", messages[:FIRST])],
        "second": [write_messages(folder / "second.grib", messages[FIRST:])],
        "pieces": pieces,
    }


@pytest.fixture(scope="module")
def base_store(tmp_path_factory: pytest.TempPathFactory, parts: dict[str, list[Path]]) -> Path:
    path = tmp_path_factory.mktemp("base") / "s.zarr"
    prepare(parts["first"], path)
    return path


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    """(time, lat, lon) float32: every step of the file as eccodes decodes it."""
    return np.stack([m["values"] for m in decode_all(shared_file(T2M))]).astype(np.float32)


def _copy(store: Path, folder: Path) -> Path:
    return Path(shutil.copytree(store, folder / store.name))


def _visible(path: Path) -> dict[str, object]:
    """What a reader sees: times, statistics, and the values at the last visible time."""
    store = Store.open(path)
    arrays = store.field("t2m")
    mean, std = arrays.global_norm()
    local_mean, _ = arrays.local_norm(201903)
    last = read_window(store, "t2m", (0,), arrays.times[-1:], slice(0, 33), np.arange(49))
    return {
        "times": arrays.times,
        "global": (mean, std),
        "local_mean": local_mean,
        "months": arrays.months,
        "last": last[0, 0],
    }


def _assert_same_view(seen: dict[str, object], expected: dict[str, object]) -> None:
    for key, value in expected.items():
        np.testing.assert_array_equal(seen[key], value, err_msg=key)


@pytest.mark.parametrize("fault_point", [1, 2, 3])
def test_a_killed_append_is_invisible_until_it_is_rolled_back(
    tmp_path: Path, parts: dict[str, list[Path]], base_store: Path, fault_point: int
) -> None:
    """Fault points: 1 after the data is written, 2 after the statistics, 3 just before the
    commit (the root already records the new extent: readers must take it from the journal)."""
    store = _copy(base_store, tmp_path)
    before = _visible(store)
    second = str(parts["second"][0])
    killed = run_killed(fault_point, INGEST_FAULT_POINTS, "prepare", second, "--store", str(store))
    assert killed.returncode == -9, killed.stderr
    # The store holds the uncommitted append: a longer time axis, merged statistics...
    assert len(Store.open(store, writable=True).field("t2m").times) == 576
    # ... which no reader sees.
    assert Store.open(store).updating
    _assert_same_view(_visible(store), before)
    beyond = np.array([np.datetime64("2019-03-13T12:00", "s")])
    with pytest.raises(StoreUpdatingError, match="store being updated by another run, retry"):
        read_window(Store.open(store), "t2m", (0,), beyond, slice(0, 33), np.arange(49))
    shown = run_cli("info", str(store), "--json")
    assert shown.returncode == 0, shown.stderr
    summary = json.loads(shown.stdout)
    assert summary["updating"] is True and summary["sources"] == 1
    assert summary["fields"][0]["times"] == FIRST
    assert summary["fields"][0]["last_time"] == "2019-03-13T11:00:00"
    # The next run rolls back and appends again: now everything is visible.
    resumed = run_cli("prepare", second, "--store", str(store), "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert not Store.open(store).updating
    assert len(_visible(store)["times"]) == 576  # type: ignore[arg-type]


def _committed_states(reference: np.ndarray) -> list[tuple[int, float, float]]:
    """(steps, global mean, global std) after each commit of the concurrent writer."""
    states = []
    for steps in range(FIRST, len(reference) + 1, PIECE):
        values = reference[:steps].astype(np.float64)
        states.append((steps, float(values.mean()), float(values.std())))
    return states


def test_a_reader_during_appends_by_another_process_sees_only_committed_data(
    tmp_path: Path, parts: dict[str, list[Path]], base_store: Path, reference: np.ndarray
) -> None:
    store = _copy(base_store, tmp_path)
    states = {steps: (mean, std) for steps, mean, std in _committed_states(reference)}
    pieces = [str(p) for p in parts["pieces"]]
    writer = subprocess.Popen(
        [sys.executable, "-m", "atmorep_cli", "prepare", *pieces, "--store", str(store), "--json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    observed: list[tuple[int, bool]] = []
    while writer.poll() is None:
        seen = _visible(store)
        steps = len(seen["times"])  # type: ignore[arg-type]
        assert steps in states, steps  # whole files only
        # The last visible time holds its real values, never the fill of unwritten rows.
        np.testing.assert_array_equal(seen["last"], reference[steps - 1])
        # The statistics are those of some commit (each read sees one, never a half-merged
        # state); a commit may land between reading the times and the statistics.
        mean, std = seen["global"]  # type: ignore[misc]
        assert any(
            np.isclose(mean[0], m, rtol=1e-9) and np.isclose(std[0], s, rtol=1e-6)
            for m, s in states.values()
        ), (mean, std)
        observed.append((steps, Store.open(store).updating))
    assert writer.returncode == 0, writer.stderr.read() if writer.stderr else ""
    assert any(updating for _, updating in observed), "no read overlapped an ingest"
    assert [s for s, _ in observed] == sorted(s for s, _ in observed)  # never back in time
    assert len(_visible(store)["times"]) == 576  # type: ignore[arg-type]


def test_a_store_from_before_committed_times_shows_everything_until_prepare_records_them(
    tmp_path: Path, parts: dict[str, list[Path]], base_store: Path
) -> None:
    store = _copy(base_store, tmp_path)
    root = zarr.open_group(str(store), mode="r+")
    attributes = dict(root.attrs)
    del attributes[COMMITTED_TIMES]
    root.attrs.put(attributes)  # as an older atmorep wrote it
    assert len(Store.open(store).field("t2m").times) == FIRST
    killed = run_killed(
        1, INGEST_FAULT_POINTS, "prepare", str(parts["second"][0]), "--store", str(store)
    )
    assert killed.returncode == -9, killed.stderr
    assert len(Store.open(store).field("t2m").times) == FIRST  # recorded before the append
