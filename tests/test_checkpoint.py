"""Checkpoints: exact round trips, an optimizer that continues identically, atomic saves, and
one clear error naming the file for every missing or corrupt part."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from atmorep_core.errors import CheckpointError
from atmorep_core.model import checkpoint
from atmorep_core.model.checkpoint import Checkpoint


def _model_and_optimizer(seed: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 3))
    return model, torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.95))


def _train(model: torch.nn.Module, optimizer: torch.optim.Optimizer, steps: int) -> None:
    for _ in range(steps):
        x = torch.randn(4, 8)
        loss = model(x).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def _snapshot(model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int) -> Checkpoint:
    return Checkpoint(
        step=step,
        model=model.state_dict(),
        config={"model": {"width": 16}, "training": {"lr": 1e-2}},
        normalisation={"t2m": {"kind": "local", "months": [201903]}},
        data_window={"first": "2019-03-01T00:00:00", "last": "2019-03-20T23:00:00"},
        optimizer=optimizer.state_dict(),
        torch_rng={"cpu": torch.get_rng_state()},
        numpy_rng=np.random.default_rng(7).bit_generator.state,
    )


def test_resumed_optimizer_continues_exactly(tmp_path: Path) -> None:
    model, optimizer = _model_and_optimizer(0)
    _train(model, optimizer, 3)
    checkpoint.save(tmp_path, _snapshot(model, optimizer, 3))
    _train(model, optimizer, 2)  # the uninterrupted run goes on

    restored = checkpoint.load(tmp_path)
    twin, twin_optimizer = _model_and_optimizer(1)  # different initial weights on purpose
    twin.load_state_dict(restored.model)
    twin_optimizer.load_state_dict(restored.optimizer)  # type: ignore[arg-type]
    torch.set_rng_state(restored.torch_rng["cpu"])
    _train(twin, twin_optimizer, 2)
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    model, optimizer = _model_and_optimizer(0)
    _train(model, optimizer, 1)
    saved = _snapshot(model, optimizer, 1)
    folder = checkpoint.save(tmp_path, saved)
    loaded = checkpoint.load(folder)
    assert loaded.step == 1 and loaded.config == saved.config
    assert loaded.normalisation == saved.normalisation and loaded.data_window == saved.data_window
    for name, tensor in saved.model.items():
        assert torch.equal(loaded.model[name], tensor)
    generator = np.random.default_rng()
    generator.bit_generator.state = loaded.numpy_rng  # type: ignore[assignment]
    assert generator.integers(1 << 30) == np.random.default_rng(7).integers(1 << 30)


def test_latest_points_to_the_newest_complete_save(tmp_path: Path) -> None:
    model, optimizer = _model_and_optimizer(0)
    checkpoint.save(tmp_path, _snapshot(model, optimizer, 5))
    (tmp_path / "step-00000010.tmp").mkdir()  # a save killed half way
    (tmp_path / "step-00000010.tmp" / "model.safetensors").write_bytes(b"partial")
    assert checkpoint.latest(tmp_path).name == "step-00000005"
    assert checkpoint.load(tmp_path).step == 5
    checkpoint.save(tmp_path, _snapshot(model, optimizer, 10))
    assert checkpoint.load(tmp_path).step == 10
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["latest", "step-00000005", "step-00000010"]


def test_a_folder_without_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not a checkpoint or run folder") as caught:
        checkpoint.load(tmp_path)
    assert caught.value.exit_code == 4
    with pytest.raises(CheckpointError, match="no such folder"):
        checkpoint.load(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="not a folder"):
        checkpoint.load(tmp_path / "file")


def _saved_run(tmp_path: Path) -> Path:
    model, optimizer = _model_and_optimizer(0)
    _train(model, optimizer, 1)
    checkpoint.save(tmp_path, _snapshot(model, optimizer, 1))
    return tmp_path


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _pickle_instead(path: Path) -> None:
    torch.save({"weight": torch.zeros(3)}, path)  # a pickle (zip) where safetensors belongs


FILE_DAMAGE = {
    "missing": (lambda path: path.unlink(), "missing from the checkpoint"),
    "empty": (lambda path: path.write_bytes(b""), "not a complete safetensors file"),
    "truncated": (_truncate, "not a complete safetensors file"),
    "pickle": (_pickle_instead, "not a complete safetensors file"),
}


@pytest.mark.parametrize("name", ["model", "optimizer", "rng"])
@pytest.mark.parametrize("damage", sorted(FILE_DAMAGE))
def test_a_damaged_tensor_file_is_named(tmp_path: Path, name: str, damage: str) -> None:
    run = _saved_run(tmp_path)
    file = checkpoint.latest(run) / f"{name}.safetensors"
    change, words = FILE_DAMAGE[damage]
    change(file)
    with pytest.raises(CheckpointError, match=words) as caught:
        checkpoint.load(run)
    assert str(file) in str(caught.value) and caught.value.exit_code == 4
    if name != "model":  # products read only the weights
        assert checkpoint.load(run, training_state=False).step == 1


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{not json", "corrupt"),
        (b"\xff\xfe garbage", "corrupt"),
        ('{"format_version": 99}', "checkpoint format 99, this atmorep reads 1"),
        ("[1, 2]", "checkpoint format None"),
        ('{"format_version": 1, "step": 1}', "lacks config, normalisation, data_window"),
        (
            '{"format_version": 1, "step": 1, "config": {}, "normalisation": {}, '
            '"data_window": {}}',
            "no model configuration",
        ),
    ],
)
def test_a_corrupt_state_file_is_named(tmp_path: Path, text: str | bytes, words: str) -> None:
    state = checkpoint.latest(_saved_run(tmp_path)) / checkpoint.STATE
    state.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(CheckpointError, match=words) as caught:
        checkpoint.read_state(tmp_path)
    assert str(state) in str(caught.value)


def test_resume_needs_the_training_state_and_products_do_not(tmp_path: Path) -> None:
    state_file = checkpoint.latest(_saved_run(tmp_path)) / checkpoint.STATE
    state = json.loads(state_file.read_text())
    state["optimizer"] = {"param_groups": state["optimizer"]["param_groups"]}  # scalars lost
    state_file.write_text(json.dumps(state))
    assert checkpoint.load(tmp_path, training_state=False).step == 1
    with pytest.raises(CheckpointError, match=r"optimizer\.safetensors and the optimizer in"):
        checkpoint.load(tmp_path)
    del state["optimizer"]
    state_file.write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match="lacks optimizer"):
        checkpoint.load(tmp_path)


@pytest.mark.parametrize("pointer", ["step-00000099", "", "../elsewhere", "/etc"])
def test_a_latest_pointing_at_nothing_is_named(tmp_path: Path, pointer: str) -> None:
    run = _saved_run(tmp_path)
    (run / checkpoint.LATEST).write_text(pointer)
    with pytest.raises(CheckpointError, match="which is not a checkpoint of") as caught:
        checkpoint.load(run)
    assert str(run / checkpoint.LATEST) in str(caught.value)
