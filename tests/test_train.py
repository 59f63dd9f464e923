"""`atmorep train` on the real ERA5 t2m sample: runs, resumes, distributes, assembles."""

from __future__ import annotations

import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from atmorep_core.data.prepare import prepare
from atmorep_core.model import checkpoint
from atmorep_core.training import metrics
from atmorep_core.training.trainer import return_large_frees_to_os
from tests.helpers import run_cli, shared_file
from tests.killer import STEP_STARTS, run_killed

T2M = "era5/era5-t2m-uk-2019-03-01to24.grib"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("train") / "t2m.zarr"
    prepare([shared_file(T2M)], path)
    return path


def recipe(folder: Path, store: Path, **training: Any) -> Path:
    """A tiny single-field recipe: 12 h x 27 x 45 points, forecast validation on the last days."""
    text = {
        "model": {
            "fields": [
                {
                    "name": "t2m",
                    "levels": [0],
                    "token_count": [4, 3, 5],
                    "token_size": [3, 9, 9],
                    "embed_dim": 32,
                    "num_heads": 4,
                    "encoder_layers": 1,
                    "decoder_layers": 1,
                    "tail_heads": 4,
                }
            ]
        },
        "data": {
            "store": str(store),
            "train": ["2019-03-01T00:00", "2019-03-19T23:00"],
            "validation": ["2019-03-20T00:00", "2019-03-24T23:00"],
        },
        "training": {
            "steps": 12,
            "batch_size": 2,
            "samples_per_epoch": 64,
            "learning_rate": 1e-3,
            "warmup_steps": 2,
            "checkpoint_every": 5,
            "validate_every": 6,
            "validation_batches": 1,
            "masking": {"fields": {"t2m": {"kind": "BERT", "max_ratio": 0.5}}},
            "validation": {"forecast": {"fields": {"t2m": {"kind": "forecast"}}}},
            **training,
        },
    }
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(text))
    return path


def _train(*args: str, env: dict[str, str] | None = None) -> None:
    result = run_cli("train", *args, "--json", env=env)
    assert result.returncode == 0, result.stderr


def _losses(run: Path) -> np.ndarray:
    return np.array([float(row["loss"]) for row in metrics.read(run / "metrics.csv")])


def test_a_run_writes_checkpoints_metrics_and_validation(tmp_path: Path, store: Path) -> None:
    _train(str(recipe(tmp_path, store)), "--run-dir", str(tmp_path / "run"))
    rows = metrics.read(tmp_path / "run" / "metrics.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, 13))
    assert all(np.isfinite(float(r["loss"])) and float(r["tokens_per_s"]) > 0 for r in rows)
    assert float(rows[0]["lr"]) == pytest.approx(5e-4)  # warm-up: step 1 of 2
    validation = metrics.read(tmp_path / "run" / "validation.csv")
    assert [(r["step"], r["strategy"], r["field"]) for r in validation] == [
        ("6", "forecast", "t2m"), ("12", "forecast", "t2m")
    ]  # fmt: skip
    assert all(0 < float(r["rmse"]) < 5 and float(r["spread"]) > 0 for r in validation)
    events = list((tmp_path / "run" / "tensorboard").rglob("events.out.tfevents.*"))
    assert {e.parent.name for e in events} == {"metrics", "validation"}
    saved = checkpoint.load(tmp_path / "run")
    assert saved.step == 12 and sorted(p.name for p in (tmp_path / "run").glob("step-*")) == [
        "step-00000005", "step-00000010", "step-00000012"
    ]  # fmt: skip
    assert saved.config["training"]["steps"] == 12
    assert saved.data_window["validation"] == ["2019-03-20T00:00:00", "2019-03-24T23:00:00"]
    assert 270 < saved.normalisation["t2m"]["global_mean"][0] < 290


def test_a_mixture_of_strategies_trains_and_validates_each_choice(
    tmp_path: Path, store: Path
) -> None:
    mixture = {
        "kind": "mixture",
        "choices": [
            {"weight": 3, "strategy": {"kind": "BERT", "max_ratio": 0.5}},
            {"weight": 1, "strategy": {"kind": "forecast", "time_tokens": 1}},
        ],
    }
    masking = {"fields": {"t2m": mixture}}
    path = recipe(tmp_path, store, steps=3, validate_every=3, masking=masking,
                  validation={"mix": masking})  # fmt: skip
    _train(str(path), "--run-dir", str(tmp_path / "run"))
    assert np.isfinite(_losses(tmp_path / "run")).all() and len(_losses(tmp_path / "run")) == 3
    validation = metrics.read(tmp_path / "run" / "validation.csv")
    assert [r["strategy"] for r in validation] == ["mix.0.BERT", "mix.1.forecast"]
    assert all(0 < float(r["rmse"]) < 5 for r in validation)


@pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt"
)
def test_large_frees_go_back_to_the_os_on_glibc() -> None:
    assert return_large_frees_to_os() is True


@pytest.mark.slow
def test_kill_and_resume_reproduces_the_uninterrupted_losses(tmp_path: Path, store: Path) -> None:
    path = str(recipe(tmp_path, store))
    _train(path, "--run-dir", str(tmp_path / "whole"))
    # Killed as step 8 starts: steps 1-7 are done and logged, the checkpoint of step 5 saved.
    killed = run_killed(8, STEP_STARTS, "train", path, "--run-dir", str(tmp_path / "cut"))
    assert killed.returncode == -9 and checkpoint.load(tmp_path / "cut").step == 5
    _train(path, "--run-dir", str(tmp_path / "cut"), "--resume")
    np.testing.assert_allclose(_losses(tmp_path / "cut"), _losses(tmp_path / "whole"), rtol=1e-6)
    whole, cut = checkpoint.load(tmp_path / "whole"), checkpoint.load(tmp_path / "cut")
    for name, tensor in whole.model.items():
        np.testing.assert_allclose(cut.model[name].numpy(), tensor.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["ddp", "fsdp"])
def test_two_gloo_processes_equal_one_process_on_the_combined_batch(
    tmp_path: Path, store: Path, kind: str
) -> None:
    # Forecast masking draws nothing at random, so both runs ask the same questions.
    forecast = {"fields": {"t2m": {"kind": "forecast"}}}
    one = recipe(tmp_path, store, steps=1, batch_size=4, masking=forecast)
    _train(str(one), "--run-dir", str(tmp_path / "one"))
    two = recipe(tmp_path, store, steps=1, batch_size=2, masking=forecast, parallel=kind)
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    import subprocess

    result = subprocess.run(
        [*launch, "-m", "atmorep_cli", "train", str(two), "--run-dir", str(tmp_path / "two")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    single, double = checkpoint.load(tmp_path / "one"), checkpoint.load(tmp_path / "two")
    # AdamW's first step moves each weight by about the learning rate (1e-3) times the sign of its
    # gradient; the two gradient sums differ only by float rounding, which the normalisation
    # turns into a few % of a step for the rare gradients near zero (1.2e-5 seen), and into
    # nothing visible for the rest. A wrongly combined gradient would be off by whole steps.
    differences = [(double.model[k] - v).abs().flatten() for k, v in single.model.items()]
    every = torch.cat(differences)
    assert float(every.max()) < 5e-5 and float(every.median()) < 1e-7, every.max()
    assert len(single.model) > 10


def test_a_pretrained_field_is_assembled_and_a_mismatch_named(tmp_path: Path, store: Path) -> None:
    _train(str(recipe(tmp_path, store, steps=2)), "--run-dir", str(tmp_path / "pre"))
    frozen = recipe(tmp_path, store, steps=1, learning_rate=1e-12, warmup_steps=0)
    pretrained = f"t2m={tmp_path / 'pre'}"
    _train(str(frozen), "--run-dir", str(tmp_path / "post"), "--init-field", pretrained)
    before, after = checkpoint.load(tmp_path / "pre"), checkpoint.load(tmp_path / "post")
    for name, tensor in before.model.items():
        np.testing.assert_allclose(after.model[name].numpy(), tensor.numpy(), atol=1e-6)
    wider = run_cli(
        "train", str(frozen), "--run-dir", str(tmp_path / "wide"),
        "--set", "model.fields.0.embed_dim=64", "--init-field", pretrained,
    )  # fmt: skip
    assert wider.returncode == 2 and "model.fields.t2m.embed_dim" in wider.stderr


def test_a_frozen_encoder_keeps_its_pretrained_weights_while_the_rest_learns(
    tmp_path: Path, store: Path
) -> None:
    _train(str(recipe(tmp_path, store, steps=2)), "--run-dir", str(tmp_path / "pre"))
    tuned = recipe(tmp_path, store, steps=3, warmup_steps=0, encoder_lr_scale=0.0)
    _train(
        str(tuned), "--run-dir", str(tmp_path / "tuned"), "--init-field", f"t2m={tmp_path / 'pre'}"
    )
    before, after = checkpoint.load(tmp_path / "pre"), checkpoint.load(tmp_path / "tuned")
    parts = {name: name.split(".")[2] for name in before.model}
    assert set(parts.values()) == {"embedding", "encoder", "decoder", "tail"}
    for name, part in parts.items():
        same = torch.equal(after.model[name], before.model[name])
        assert same == (part in ("embedding", "encoder")), name


def test_a_misspelt_training_key_is_named(tmp_path: Path, store: Path) -> None:
    result = run_cli("train", str(recipe(tmp_path, store)), "--run-dir", str(tmp_path / "r"),
                     "--set", "training.stpes=3")  # fmt: skip
    assert result.returncode == 2 and "training.stpes" in result.stderr
