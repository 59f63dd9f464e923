"""`atmorep train` never mixes two runs in one run folder: --resume continues, --restart clears."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from atmorep_core.model import checkpoint
from atmorep_core.training import metrics
from tests.helpers import atmorep_in_process, run_cli
from tests.test_train import recipe

atmorep = atmorep_in_process


def fingerprint(folder: Path) -> dict[str, str]:
    """Every file under the folder by relative path, with its SHA-256."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def steps_logged(run: Path) -> list[int]:
    return [int(row["step"]) for row in metrics.read(run / "metrics.csv")]


@pytest.fixture(scope="module")
def three_steps(tmp_path_factory: pytest.TempPathFactory, t2m_store: Path) -> Path:
    """A run folder with checkpoints after steps 1, 2 and 3 (and a file of the user's)."""
    folder = tmp_path_factory.mktemp("three")
    path = recipe(folder, t2m_store, steps=3, checkpoint_every=1, validate_every=100)
    result = run_cli("train", str(path), "--run-dir", str(folder / "run"))
    assert result.returncode == 0, result.stderr
    (folder / "run" / "notes.txt").write_text("the user's own file")
    return folder / "run"


@pytest.fixture
def earlier_run(tmp_path: Path, three_steps: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(three_steps, run)
    return run


def test_a_folder_with_checkpoints_is_refused_and_left_as_it_was(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, t2m_store: Path, earlier_run: Path
) -> None:
    before = fingerprint(earlier_run)
    path = recipe(tmp_path, t2m_store, steps=2, checkpoint_every=1, validate_every=100)
    code, _, stderr = atmorep(capsys, "train", str(path), "--run-dir", str(earlier_run))
    assert code == 2
    assert len(stderr.strip().splitlines()) == 1 and stderr.startswith("error:")
    assert "step-00000003" in stderr and "--resume" in stderr and "--restart" in stderr
    assert fingerprint(earlier_run) == before
    both = atmorep(capsys, "train", str(path), "--run-dir", str(earlier_run), "--resume",
                   "--restart")  # fmt: skip
    assert both[0] == 2 and "choose one" in both[2] and fingerprint(earlier_run) == before


def test_restart_clears_the_earlier_run_and_keeps_other_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, t2m_store: Path, earlier_run: Path
) -> None:
    path = recipe(tmp_path, t2m_store, steps=2, checkpoint_every=1, validate_every=100)
    code, stdout, stderr = atmorep(
        capsys, "train", str(path), "--run-dir", str(earlier_run), "--restart", "--json"
    )
    assert code == 0, stderr
    assert json.loads(stdout)["first_step"] == 0 and json.loads(stdout)["last_step"] == 2
    assert sorted(p.name for p in earlier_run.glob("step-*")) == [
        "step-00000001", "step-00000002"
    ]  # fmt: skip
    assert checkpoint.latest(earlier_run).name == "step-00000002"
    assert steps_logged(earlier_run) == [1, 2]
    events = list((earlier_run / "tensorboard" / "metrics").glob("events.out.tfevents.*"))
    assert len(events) == 1  # the earlier run's event file is gone with it
    assert (earlier_run / "notes.txt").read_text() == "the user's own file"


def test_resume_continues_the_run_in_its_folder(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, t2m_store: Path, earlier_run: Path
) -> None:
    path = recipe(tmp_path, t2m_store, steps=4, checkpoint_every=1, validate_every=100)
    code, stdout, stderr = atmorep(
        capsys, "train", str(path), "--run-dir", str(earlier_run), "--resume", "--json"
    )
    assert code == 0, stderr
    assert (json.loads(stdout)["first_step"], json.loads(stdout)["last_step"]) == (3, 4)
    assert steps_logged(earlier_run) == [1, 2, 3, 4]
    assert checkpoint.latest(earlier_run).name == "step-00000004"


@pytest.mark.parametrize("made", [False, True], ids=["absent", "empty"])
def test_resume_before_the_first_checkpoint_starts_afresh_with_a_note(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, t2m_store: Path, made: bool
) -> None:
    run = tmp_path / "run"
    if made:
        run.mkdir()
    path = recipe(tmp_path, t2m_store, steps=1, validate_every=100)
    code, stdout, stderr = atmorep(capsys, "train", str(path), "--run-dir", str(run), "--resume",
                                   "--json")  # fmt: skip
    assert code == 0, stderr
    assert (
        stderr.strip()
        == f"note: --resume: {run} holds no checkpoint yet; training starts at step 0"
    )
    assert json.loads(stdout)["first_step"] == 0 and checkpoint.load(run).step == 1
