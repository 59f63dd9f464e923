"""Checkpoints: exact round trips, an optimizer that continues identically, atomic saves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from atmorep_core.errors import ConfigError
from atmorep_core.training import checkpoint
from atmorep_core.training.checkpoint import Checkpoint


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
    with pytest.raises(ConfigError, match="not a checkpoint or run folder"):
        checkpoint.load(tmp_path)
