"""Products committed together with their manifest, or not at all: kill -9 at every rename of the
write-and-rename phase, full and read-only disks, outputs in the way, corrupt checkpoints and the
input caches of failed runs.

"As before" compares every file of the output folder (path and SHA-256) except the empty lock
file and the run log, whose lines record the failure for the operator.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from safetensors.torch import load_file, save_file

from atmorep_cli.main import run
from atmorep_core.errors import ConfigError
from atmorep_core.io.filesystem import STAGING
from atmorep_core.io.product_read import read_product
from atmorep_core.io.product_stash import load_products
from atmorep_core.io.run_folder import COMPUTED, LOCK_NAME, ProductRun
from atmorep_core.jobs.product_job import INPUT_CACHE, Make, run_product
from tests.conftest import T2M
from tests.helpers import (
    decode_all,
    grib_messages,
    mounted_tmpfs,
    run_cli,
    shared_file,
    write_messages,
)

STEM = "forecast_20190322T1200"
PRODUCTS = [f"{STEM}.grib2", f"{STEM}.nc", f"maps/{STEM}/t2m_surface0_002h.png"]
KILLER = Path(__file__).with_name("rename_killer.py")
LOG = "atmorep.log"


def forecast_args(run: Path, out: Path, *extra: str, init: str = "2019-03-22T12") -> list[str]:
    return [
        "forecast", "--init", init, "--lead", "2h", "--checkpoint", str(run), "--out", str(out),
        "--plot", "t2m", "--json", *extra,
    ]  # fmt: skip


def killed_after(renames: int, folder: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(KILLER), str(renames), str(folder), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def files(folder: Path) -> dict[str, str]:
    """Every file under `folder` (relative path: SHA-256) but the lock and the run log."""
    found = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = str(path.relative_to(folder))
        if name not in (LOCK_NAME, LOG):
            found[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def final_files(folder: Path) -> dict[str, str]:
    """`files` under their final names (not staged, nor the computed products kept)."""
    return {n: d for n, d in files(folder).items() if not n.startswith((STAGING, COMPUTED))}


def assert_committed(folder: Path) -> None:
    """Every file under a final name is listed, with its checksum, by the manifest beside it."""
    final = final_files(folder)
    manifests = [n for n in final if n.endswith(".json")]
    listed: dict[str, str] = {}
    for name in manifests:
        listed |= json.loads((folder / name).read_text())["outputs"]
    products = {n: d for n, d in final.items() if n not in manifests}
    assert products.items() <= listed.items(), (products, listed)


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), stderr
    assert "Traceback" not in stderr
    return lines[0]


def cli(capfd: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """`atmorep ARGS` in this process, through the console script's entry: exit code, stderr."""
    saved = sys.argv
    sys.argv = ["atmorep", *args]
    try:
        run()
        code = 0
    except SystemExit as done:
        code = int(done.code or 0)
    finally:
        sys.argv = saved
    return code, capfd.readouterr().err


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, t2m_run: Path) -> tuple[Path, int]:
    """An uninterrupted forecast's folder and the number of renames it made there."""
    folder = tmp_path_factory.mktemp("reference")
    result = killed_after(0, folder, forecast_args(t2m_run, folder))
    assert result.returncode == 0, result.stderr
    return folder, int(result.stderr.split("renames:")[-1])


@pytest.fixture(scope="module")
def grib_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six hours of the real t2m file, 2019-03-21T20 .. 22T01."""
    path = tmp_path_factory.mktemp("slice") / "t2m-slice.grib"
    return write_messages(path, grib_messages(shared_file(T2M))[500:506])


# --- the commit, in this process -------------------------------------------------------------


def staged_bytes(files_and_bytes: dict[str, bytes], error: Exception | None = None) -> Make:
    """A `make` that stages these files (relative name: bytes), then raises `error` if given."""

    def make(run: ProductRun) -> tuple[list[Path], dict[str, str]]:
        written = []
        for name, data in files_and_bytes.items():
            path = run.staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            written.append(path)
            path.write_bytes(data)
        if error is not None:
            raise error
        return written, {"note": "staged"}

    return make


def test_a_run_moves_its_files_in_with_the_manifest_and_a_failed_one_changes_nothing(
    tmp_path: Path,
) -> None:
    run = ProductRun(tmp_path, "p", {"n": 1})
    first = {"p.grib2": b"grib", "p.nc": b"netcdf", "maps/p/a.png": b"png"}
    manifest = run_product(run, False, staged_bytes(first))
    assert {n: (tmp_path / n).read_bytes() for n in first} == first
    assert manifest["outputs"] == {n: hashlib.sha256(b).hexdigest() for n, b in first.items()}
    assert sorted(os.listdir(tmp_path)) == sorted([LOCK_NAME, "maps", "p.grib2", "p.json", "p.nc"])
    before = files(tmp_path)
    failing = staged_bytes({"p.grib2": b"new", "q.nc": b"other"}, ConfigError("--plot x"))
    with pytest.raises(ConfigError):
        run_product(ProductRun(tmp_path, "p", {"n": 2}), False, failing)
    assert files(tmp_path) == before  # nothing moved, the staging folder removed
    # A changed request without the NetCDF and map: the earlier ones go, not left unlisted.
    (tmp_path / STAGING / "left-by-a-kill").mkdir(parents=True)
    run_product(ProductRun(tmp_path, "p", {"n": 3}), False, staged_bytes({"p.grib2": b"g3"}))
    assert sorted(final_files(tmp_path)) == ["p.grib2", "p.json"]
    assert not (tmp_path / STAGING).exists()
    assert_committed(tmp_path)


def test_what_a_killed_run_staged_whole_is_moved_in_and_the_rest_removed(tmp_path: Path) -> None:
    made = {"p.grib2": b"grib", "maps/p/a.png": b"png"}
    digests = {n: hashlib.sha256(b).hexdigest() for n, b in made.items()}
    staging = tmp_path / STAGING
    for name, data in made.items():
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        (staging / name).write_bytes(data)
    # Killed before its manifest was written: nothing moves in.
    with ProductRun(tmp_path, "p", {"n": 1}).locked():
        assert not staging.exists()
    assert final_files(tmp_path) == {}
    # Killed after writing it: the whole commit is finished, then up to date for that request.
    for name, data in made.items():
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        (staging / name).write_bytes(data)
    (staging / "p.json").write_text(json.dumps({"request": {"n": 1}, "outputs": digests}))
    run = ProductRun(tmp_path, "p", {"n": 1})
    with run.locked():
        assert run.up_to_date() is not None
    assert {n: d for n, d in final_files(tmp_path).items() if n != "p.json"} == digests
    # A staged file whose checksum does not match its manifest is not moved in.
    (staging / "p.grib2").parent.mkdir(parents=True, exist_ok=True)
    (staging / "p.grib2").write_bytes(b"truncated")
    (staging / "p.json").write_text(json.dumps({"request": {"n": 2}, "outputs": digests}))
    with ProductRun(tmp_path, "p", {"n": 2}).locked():
        pass
    assert (tmp_path / "p.grib2").read_bytes() == b"grib"
    assert json.loads((tmp_path / "p.json").read_text())["request"] == {"n": 1}


# --- kill -9 inside the write-and-rename phase ------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("renames", range(1, 9))
def test_a_forecast_killed_after_any_rename_is_whole_after_the_rerun(
    tmp_path: Path, t2m_run: Path, reference: tuple[Path, int], renames: int
) -> None:
    # The computed products kept; GRIB2, NetCDF and map staged; the manifest and the three moved.
    assert reference[1] == 8
    args = forecast_args(t2m_run, tmp_path)
    killed = killed_after(renames, tmp_path, args)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert_committed(tmp_path)
    made = {name.removeprefix(f"{STAGING}/"): d for name, d in files(tmp_path).items()}
    kept = load_products(ProductRun(tmp_path, STEM, {}).computed)
    assert kept is not None  # from the first rename on, until the folder is committed
    rerun = run_cli(*args)
    assert rerun.returncode == 0, rerun.stderr
    # Once its manifest was in place, the killed run's files were whole: the rerun moves them in.
    assert json.loads(rerun.stdout)["skipped"] == (renames >= 5)
    now = files(tmp_path)
    assert sorted(now) == sorted([*PRODUCTS, f"{STEM}.json"])  # the kept products dropped
    # Written from the killed run's numbers: what it had written is the same, byte for byte ...
    assert {n: d for n, d in now.items() if n in made} == {n: made[n] for n in now if n in made}
    [product], _ = kept
    [field] = read_product(tmp_path / f"{STEM}.nc").fields
    np.testing.assert_array_equal(field.values, product.fields[0].values)  # ... and the rest
    assert_same_products(tmp_path, reference[0])  # the values of an uninterrupted run


def assert_same_products(folder: Path, reference: Path) -> None:
    """The same files holding the same values, and manifests alike but for their time.

    Values are compared to one float32 step, not bytes: a computation on the CPU can differ in
    its last bit from one run to the next with the threads' timing (seen at a few % of points in
    about one run of five, in some stretches), so two runs of one request agree to 3e-5 K, not
    always bit for bit. What a killed run had made whole is moved in, not recomputed."""
    now, then = files(folder), files(reference)
    manifest = f"{STEM}.json"
    assert sorted(now) == sorted(then) == sorted([*PRODUCTS, manifest])
    ours, theirs = (json.loads((f / manifest).read_text()) for f in (folder, reference))
    assert ours["request"] == theirs["request"]
    grib = f"{STEM}.grib2"
    for new, old in zip(decode_all(folder / grib), decode_all(reference / grib), strict=True):
        np.testing.assert_allclose(new["values"], old["values"], rtol=0, atol=0.01)
    netcdf = f"{STEM}.nc"
    with xr.open_dataset(folder / netcdf) as new_nc, xr.open_dataset(reference / netcdf) as old_nc:
        assert sorted(map(str, new_nc.data_vars)) == sorted(map(str, old_nc.data_vars))
        for name in new_nc.data_vars:
            np.testing.assert_allclose(new_nc[name].values, old_nc[name].values, rtol=1e-6)


@pytest.mark.slow
def test_a_forced_rerun_killed_between_manifest_and_products_is_completed_by_the_next_run(
    tmp_path: Path, t2m_run: Path
) -> None:
    args = forecast_args(t2m_run, tmp_path)
    assert run_cli(*args).returncode == 0
    # Renames 5 and 6: the manifest, then the GRIB2; the earlier run's files went before them.
    killed = killed_after(6, tmp_path, [*args, "--force"])
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert sorted(final_files(tmp_path)) == [f"{STEM}.grib2", f"{STEM}.json"]
    assert_committed(tmp_path)
    listed = json.loads((tmp_path / f"{STEM}.json").read_text())["outputs"]
    rerun = run_cli(*args)
    assert rerun.returncode == 0 and json.loads(rerun.stdout)["skipped"], rerun.stderr
    assert {n: d for n, d in files(tmp_path).items() if n != f"{STEM}.json"} == listed


def correct_args(run: Path, source: Path, target: Path) -> list[str]:
    return ["correct", "--ifs", str(source), "--checkpoint", str(run), "-o", str(target)]


@pytest.mark.slow
@pytest.mark.parametrize("renames", [1, 2, 3])
def test_correct_killed_after_any_rename_is_whole_after_the_rerun(
    tmp_path: Path, t2m_run: Path, grib_slice: Path, renames: int
) -> None:
    """`correct -o` writes beside other files: the same guarantee outside a product folder."""
    target = tmp_path / "slice.corrected.grib2"
    args = correct_args(t2m_run, grib_slice, target)
    assert run_cli(*args).returncode == 0  # the same command uninterrupted, as the reference
    corrected = decode_all(target)
    shutil.rmtree(tmp_path)
    killed = killed_after(renames, tmp_path, args)  # the corrected file, manifest, move
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert_committed(tmp_path)
    staged = files(tmp_path)
    assert run_cli(*args).returncode == 0
    now = files(tmp_path)
    assert sorted(now) == ["slice.corrected.grib2", "slice.corrected.json"]
    if renames == 1:  # computed again: to a float32 step, as above
        for new, old in zip(decode_all(target), corrected, strict=True):
            np.testing.assert_allclose(new["values"], old["values"], rtol=0, atol=0.01)
    else:  # moved in as the killed run made it
        assert now["slice.corrected.grib2"] == staged.get(
            f"{STAGING}/slice.corrected.grib2", staged.get("slice.corrected.grib2")
        )


# --- full and read-only disks, paths in the way -------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "disk", "1m") as point:
        yield point


KEPT = 16 << 10  # what the computed products kept take on the disk: 13 KB of values, in pages


def fill(disk: Path, leave: int) -> None:
    """Leave `leave` bytes free on `disk`."""
    status = os.statvfs(disk)
    free = status.f_bavail * status.f_frsize
    (disk / "filler").write_bytes(b"\0" * (free - leave))


def earlier_products(disk: Path, reference: Path) -> Path:
    """The folder on `disk` holding an earlier forecast (another init) and its manifest."""
    folder = disk / "products"
    shutil.copytree(reference, folder, ignore=shutil.ignore_patterns(LOG))
    return folder


@pytest.mark.slow
@pytest.mark.parametrize(
    ("formats", "leave", "failing"),
    [
        ("grib", 0, ".npz"),  # the computed products kept first; numpy's write: ENOSPC
        ("grib,netcdf", KEPT + (12 << 10), ".nc"),  # netCDF-4 says "HDF error"; GRIB2 staged
        ("grib,netcdf", KEPT + (80 << 10), "_surface0_002h.png"),  # after GRIB2 and NetCDF
    ],
)
def test_a_full_disk_exits_7_naming_the_file_and_leaves_the_folder_as_it_was(
    tmp_path: Path,
    small_disk: Path,
    t2m_run: Path,
    reference: tuple[Path, int],
    formats: str,
    leave: int,
    failing: str,
) -> None:
    folder = earlier_products(small_disk, reference[0])
    fill(small_disk, leave)
    before = files(folder)
    args = forecast_args(t2m_run, folder, "--format", formats, init="2019-03-22T13")
    result = run_cli(*args, "--log", str(tmp_path / LOG))
    assert result.returncode == 7, result.stderr
    line = one_error_line(result.stderr)
    stem = "forecast_20190322T1300"
    named = {".png": f"maps/{stem}/t2m{failing}", ".npz": f"{COMPUTED}/{stem}{failing}"}.get(
        failing[failing.rindex(".") :], f"{stem}{failing}"
    )
    # netCDF-4 adds its own words: "... No space left on device (NetCDF: HDF error)"
    assert line.startswith(f"error: cannot write {folder / named}: No space left on device"), line
    assert files(folder) == before
    assert "error (exit 7)" in (tmp_path / LOG).read_text()


@pytest.mark.slow
def test_a_read_only_folder_exits_7_and_stays_as_it_was(
    small_disk: Path, t2m_run: Path, reference: tuple[Path, int]
) -> None:
    folder = earlier_products(small_disk, reference[0])
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    before = files(folder)
    result = run_cli(*forecast_args(t2m_run, folder, init="2019-03-22T13"))
    assert result.returncode == 7, result.stderr
    line = one_error_line(result.stderr)
    assert line == f"error: cannot write {folder / LOG}: Read-only file system"
    assert files(folder) == before


def test_an_output_folder_that_is_a_file_exits_7_and_changes_nothing(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], t2m_run: Path, grib_slice: Path
) -> None:
    blocker = tmp_path / "products"
    blocker.write_text("not a folder")
    for args in (
        forecast_args(t2m_run, blocker),
        forecast_args(t2m_run, blocker / "fc"),
        correct_args(t2m_run, grib_slice, blocker / "x.grib2"),
    ):  # fmt: skip
        code, stderr = cli(capfd, *args)
        assert code == 7, stderr
        assert "is a file, not a folder" in one_error_line(stderr) and str(blocker) in stderr
    assert blocker.read_text() == "not a folder" and sorted(os.listdir(tmp_path)) == ["products"]


def test_any_environment_failure_reaching_the_entry_point_is_one_line_and_exit_7(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], t2m_run: Path
) -> None:
    """An OSError no command turned into a FileSystemError: `main.run` names its path."""
    blocker = tmp_path / "runs"
    blocker.write_text("not a folder")
    recipe = str(t2m_run / "recipe.yaml")
    code, stderr = cli(capfd, "train", recipe, "--run-dir", str(blocker / "t2m"), "--json")
    assert code == 7, stderr
    line = one_error_line(stderr)
    assert line.startswith(f"error: cannot access {blocker / 't2m'}") and "Not a directory" in line


def test_a_corrected_file_that_is_a_folder_exits_7_before_any_work(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], t2m_run: Path, grib_slice: Path
) -> None:
    (tmp_path / "out.grib2").mkdir()
    args = correct_args(t2m_run, grib_slice, tmp_path / "out.grib2")
    code, stderr = cli(capfd, *args, "--log", "/dev/null")
    assert code == 7
    assert one_error_line(stderr) == f"error: cannot write {tmp_path / 'out.grib2'}: it is a folder"
    assert os.listdir(tmp_path) == ["out.grib2"] and not os.listdir(tmp_path / "out.grib2")


# --- corrupt checkpoints and the caches of failed runs ------------------------------------------


@pytest.fixture
def damaged_run(tmp_path: Path, t2m_run: Path) -> Path:
    """A copy of the t2m run to damage."""
    return Path(shutil.copytree(t2m_run, tmp_path / "run"))


def test_a_damaged_checkpoint_exits_4_naming_the_file_for_products_and_training(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], damaged_run: Path, grib_slice: Path
) -> None:
    weights = next(damaged_run.glob("step-*")) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    out = tmp_path / "out"
    commands = (
        forecast_args(damaged_run, out),
        correct_args(damaged_run, grib_slice, out / "c.grib2"),
        ["train", str(damaged_run / "recipe.yaml"), "--run-dir", str(tmp_path / "again"),
         "--init-field", f"t2m={damaged_run}", "--json"],
    )  # fmt: skip
    for args in commands:
        code, stderr = cli(capfd, *args)
        assert code == 4, stderr
        line = one_error_line(stderr)
        assert f"{weights}: not a complete safetensors file" in line, line
    assert not out.exists() or set(os.listdir(out)) <= {LOCK_NAME, LOG}
    (damaged_run / "latest").write_text("step-99999999")
    code, stderr = cli(capfd, *forecast_args(damaged_run, out))
    assert code == 4 and "names 'step-99999999', which is not a checkpoint" in stderr


def test_weights_that_do_not_fit_the_configuration_are_refused_by_name(
    capfd: pytest.CaptureFixture[str], tmp_path: Path, damaged_run: Path
) -> None:
    weights = next(damaged_run.glob("step-*")) / "model.safetensors"
    tensors = load_file(weights)
    lost = sorted(tensors)[0]
    save_file({k: v for k, v in tensors.items() if k != lost}, weights)
    code, stderr = cli(capfd, *forecast_args(damaged_run, tmp_path / "out"))
    assert code == 4
    line = one_error_line(stderr)
    assert f"{weights}: does not fit the model of" in line and lost in line, line


def test_a_failed_run_removes_the_input_cache_it_created(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], t2m_run: Path, grib_slice: Path
) -> None:
    # The slice ends at 22T01: a forecast from 22T12 lacks its input (exit 6, a cron retries).
    args = forecast_args(t2m_run, tmp_path, "--input", str(grib_slice))
    code, stderr = cli(capfd, *args)
    line = one_error_line(stderr)
    assert code == 6 and "no input for t2m in" in line and f"{INPUT_CACHE} at" in line, line
    assert sorted(os.listdir(tmp_path)) == [LOCK_NAME, LOG]
    # Downscaling checks the checkpoint before it ingests anything.
    code, stderr = cli(
        capfd, "downscale", "--checkpoint", str(t2m_run), "--input", str(grib_slice), "--start",
        "2019-03-21T20", "--end", "2019-03-22T01", "--out", str(tmp_path),
    )  # fmt: skip
    assert code == 2 and "downscaling strategy" in one_error_line(stderr)
    assert sorted(os.listdir(tmp_path)) == [LOCK_NAME, LOG]
