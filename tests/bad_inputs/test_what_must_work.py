"""What must work beside the refusals: relative paths, every spelling of a time, a resume with
nothing to resume, and the refusals' escape hatches (`--allow-unfamiliar`,
`--allow-implausible`, a store being updated read as committed)."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from tests.bad_inputs.cli import in_process
from tests.bad_inputs.corpus import NOVEMBER, correct, forecast, prepare_into, train
from tests.bad_inputs.inputs import INIT, STEM
from tests.bad_inputs.workspace import GOOD_RECIPE, Workspace, copy_of, latest_weights


def test_paths_with_dot_dot_work_in_every_command(
    workspace: Workspace, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--store ../s.zarr` and the like: resolved before any library sees them."""
    GOOD_RECIPE(workspace)
    shutil.copy(workspace["ensemble_grib"], workspace.root / "ens.grib")
    (workspace.root / "work").mkdir()
    monkeypatch.chdir(workspace.root / "work")
    runs = [
        ("prepare", "../ens.grib", "--store", "../s.zarr", "--member", "mean", "--json"),
        ("info", "../s.zarr", "--json"),
        ("train", "../recipe.yaml", "--run-dir", "../run", "--set", "data.store=../s.zarr"),
        ("forecast", "--checkpoint", "../run", "--store", "../s.zarr", "--init", INIT, "--lead",
         "12h", "--out", "../fc", "--format", "netcdf", "--json"),
        ("evaluate", f"../fc/{STEM}.nc", "--truth", "../s.zarr", "--out", "../scores", "--json"),
    ]  # fmt: skip
    for args in runs:
        outcome = in_process(args, capfd)
        assert outcome.code == 0, (args, outcome.stderr)
    assert json.loads(outcome.stdout)["scores"]
    assert (workspace.root / "scores" / "scores.json").exists()


SPELLINGS = (
    "2017-01-02", "20170102", "2017010200", "20170102T0000", "2017-01-02 00:00",
    "2017-01-02T00:00Z", "2017-01-02T00:00:00+00:00", "2017-01-02T01:00+01:00",
    "2017-01-01T19:00-05:00",
)  # fmt: skip


def test_every_spelling_of_the_init_time_names_the_same_product(
    workspace: Workspace, capfd: pytest.CaptureFixture[str]
) -> None:
    """ISO 8601 as `datetime.fromisoformat` reads it, offsets converted to UTC, and the compact
    YYYYMMDD and YYYYMMDDHH: each finds the product of 2017-01-02 00 UTC up to date."""
    first = in_process(workspace.format(forecast("--format", "netcdf", "--json")), capfd)
    assert first.code == 0, first.stderr
    made = json.loads(first.stdout)
    assert made["init"] == "2017-01-02T00:00:00" and not made["skipped"]
    for spelling in SPELLINGS:
        args = forecast("--format", "netcdf", "--json", init=spelling)
        again = in_process(workspace.format(args), capfd)
        assert again.code == 0, (spelling, again.stderr)
        manifest = json.loads(again.stdout)
        assert manifest["skipped"] and manifest["outputs"] == made["outputs"], spelling


def test_resume_before_the_first_checkpoint_starts_afresh(
    workspace: Workspace, capfd: pytest.CaptureFixture[str]
) -> None:
    GOOD_RECIPE(workspace)
    outcome = in_process(workspace.format(train("--resume", "--json")), capfd)
    assert outcome.code == 0, outcome.stderr
    assert len(outcome.stderr.splitlines()) <= 1  # at most a note that it starts afresh
    run_folder = workspace.root / "run"
    assert (run_folder / "latest").read_text().strip() == "step-00000002"
    assert latest_weights(run_folder).stat().st_size > 0


def test_input_outside_the_experience_is_corrected_when_allowed(
    workspace: Workspace, capfd: pytest.CaptureFixture[str]
) -> None:
    """correct-ifs-outside-the-checkpoints-experience with `--allow-unfamiliar`: corrected,
    with a warning in the log and the findings in the manifest."""
    outcome = in_process(workspace.format(correct("--allow-unfamiliar", "--json")), capfd)
    assert outcome.code == 0, outcome.stderr
    findings = json.loads(outcome.stdout)["unfamiliar"]
    assert any(re.search(NOVEMBER, finding) for finding in findings), findings
    log = (workspace.root / "out" / "atmorep.log").read_text()
    assert re.search("warning", log, re.IGNORECASE), log


def test_a_store_being_updated_shows_only_its_committed_times(
    workspace: Workspace, capfd: pytest.CaptureFixture[str]
) -> None:
    """The append of 2 January was killed: `info` shows 1 January's two times, nothing more."""
    copy_of("journal_store", "s.zarr")(workspace)
    outcome = in_process(workspace.format(("info", "{ws}/s.zarr", "--json")), capfd)
    assert outcome.code == 0, outcome.stderr
    fields = json.loads(outcome.stdout)["fields"]
    assert sorted(f["name"] for f in fields) == ["geopotential", "temperature"]
    times = {f["name"]: (f["first_time"], f["times"]) for f in fields}
    assert set(times.values()) == {("2017-01-01T00:00:00", 2)}, times


def test_implausible_values_are_ingested_when_allowed(
    workspace: Workspace, capfd: pytest.CaptureFixture[str]
) -> None:
    """prepare-1e30-K with `--allow-implausible`, for experiments: the store takes the file."""
    copy_of("half_store", "s.zarr")(workspace)
    args = prepare_into("{t2m_hot}", "{ws}/s.zarr", "--allow-implausible", "--json")
    outcome = in_process(workspace.format(args), capfd)
    assert outcome.code == 0, outcome.stderr
    [report] = json.loads(outcome.stdout)
    assert report["status"] == "ingested" and report["last_time"] == "2019-03-24T23:00:00"


def test_a_forecast_takes_implausible_input_when_allowed(
    workspace: Workspace, capfd: pytest.CaptureFixture[str]
) -> None:
    """forecast --input with 360 K at 850 hPa: refused (exit 3), or forecast when allowed (it is
    also far outside the checkpoint's experience, which needs its own permission)."""
    refused = in_process(workspace.format(forecast("--input", "{ens_warm}")), capfd)
    assert refused.code == 3 and "360" in refused.stderr, refused.stderr
    implausible = forecast("--input", "{ens_warm}", "--allow-implausible", "--format", "grib")
    unfamiliar = in_process(workspace.format(implausible), capfd)
    assert unfamiliar.code == 3 and "+15.2 sigma" in unfamiliar.stderr, unfamiliar.stderr
    outcome = in_process(workspace.format((*implausible, "--allow-unfamiliar", "--json")), capfd)
    assert outcome.code == 0, outcome.stderr
    manifest = json.loads(outcome.stdout)
    assert manifest["request"]["allow_implausible"] is True and manifest["unfamiliar"]
    assert list(manifest["outputs"]) == [f"{STEM}.grib2"]
