"""Self-describing checkpoints: weights in safetensors, everything else in JSON.

A checkpoint is a folder `step-00001234/` inside a run folder:

    model.safetensors       the model's state dict
    optimizer.safetensors   the optimizer's tensors (moments, step counts), flattened by name
    rng.safetensors         torch's CPU (and CUDA) generator states
    state.json              step, resolved config, normalisation, data window, optimizer
                            hyper-parameters, scheduler state, numpy's generator state

It is written under a temporary name and renamed, then `latest` (a text file naming the newest
folder) is replaced atomically, so a run killed while saving keeps its previous checkpoint.
Loading reads only safetensors and JSON: it never unpickles code. A folder that is not a
checkpoint, a `latest` naming nothing, and a missing, truncated or corrupt file raise
CheckpointError (exit code 4) naming the file.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from atmorep_core.errors import CheckpointError

FORMAT_VERSION = 1
LATEST = "latest"
STATE = "state.json"
# What every state.json holds; a run's --resume also needs TRAINING_KEYS.
STATE_KEYS = ("step", "config", "normalisation", "data_window")
TRAINING_KEYS = ("optimizer", "scheduler", "numpy_rng")


@dataclass
class Checkpoint:
    """All a run needs to continue exactly, or a product needs to apply the model."""

    step: int
    model: dict[str, torch.Tensor]
    config: dict[str, Any]
    normalisation: dict[str, Any] = field(default_factory=dict)
    data_window: dict[str, Any] = field(default_factory=dict)
    optimizer: dict[str, Any] | None = None  # torch.optim.Optimizer.state_dict()
    scheduler: dict[str, Any] | None = None  # an LR scheduler's state_dict (plain numbers)
    torch_rng: dict[str, torch.Tensor] = field(default_factory=dict)
    numpy_rng: dict[str, Any] | None = None  # numpy Generator.bit_generator.state


def step_folder(run: Path, step: int) -> Path:
    return run / f"step-{step:08d}"


def save(run: Path, checkpoint: Checkpoint) -> Path:
    """Write the checkpoint into the run folder and point `latest` at it."""
    final = step_folder(run, checkpoint.step)
    building = final.with_name(final.name + ".tmp")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    save_file(_contiguous(checkpoint.model), str(building / "model.safetensors"))
    optimizer_tensors, optimizer_rest = _split_optimizer(checkpoint.optimizer)
    save_file(optimizer_tensors, str(building / "optimizer.safetensors"))
    save_file(_contiguous(checkpoint.torch_rng), str(building / "rng.safetensors"))
    state = {
        "format_version": FORMAT_VERSION,
        "step": checkpoint.step,
        "config": checkpoint.config,
        "normalisation": checkpoint.normalisation,
        "data_window": checkpoint.data_window,
        "optimizer": optimizer_rest,
        "scheduler": checkpoint.scheduler,
        "numpy_rng": checkpoint.numpy_rng,
    }
    (building / STATE).write_text(json.dumps(state, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(building, final)
    _write_atomically(run / LATEST, final.name)
    return final


def load(path: Path, training_state: bool = True) -> Checkpoint:
    """A checkpoint from its folder, or from a run folder (its `latest`).

    `training_state=False` skips the optimizer and RNG files (products need only the weights).
    """
    folder, state = read_state(path)
    if training_state:
        _require(folder / STATE, state, TRAINING_KEYS)
    saved = Checkpoint(
        step=state["step"],
        model=_tensors(folder / "model.safetensors"),
        config=state["config"],
        normalisation=state["normalisation"],
        data_window=state["data_window"],
    )
    if training_state:
        optimizer_tensors = _tensors(folder / "optimizer.safetensors")
        try:
            saved.optimizer = _join_optimizer(optimizer_tensors, state["optimizer"])
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise CheckpointError(
                f"{folder}: optimizer.safetensors and the optimizer in {STATE} do not match "
                f"({error!r})"
            ) from None
        saved.scheduler = state["scheduler"]
        saved.torch_rng = _tensors(folder / "rng.safetensors")
        saved.numpy_rng = state["numpy_rng"]
    return saved


def read_state(path: Path) -> tuple[Path, dict[str, Any]]:
    """The checkpoint folder of `path` (itself or a run's latest) and its state.json, without
    reading any tensor: products check a request against the config before loading weights."""
    if not path.is_dir():
        what = "not a folder" if path.exists() else "no such folder"
        raise CheckpointError(f"{path}: not a run or checkpoint folder ({what})")
    folder = latest(path) if (path / LATEST).exists() else path
    file = folder / STATE
    if not file.is_file():
        raise CheckpointError(f"{path}: not a checkpoint or run folder (no {STATE}, no {LATEST})")
    try:
        state = json.loads(file.read_bytes())
    except ValueError as error:  # JSON or UTF-8
        raise CheckpointError(f"{file}: corrupt ({error})") from None
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        found = state.get("format_version") if isinstance(state, dict) else None
        raise CheckpointError(
            f"{file}: checkpoint format {found}, this atmorep reads {FORMAT_VERSION}"
        )
    _require(file, state, STATE_KEYS)
    if not isinstance(state["step"], int) or not isinstance(state["config"].get("model"), dict):
        raise CheckpointError(f"{file}: corrupt (no step number or no model configuration)")
    return folder, state


def latest(run: Path) -> Path:
    """The newest complete checkpoint folder of a run."""
    pointer = run / LATEST
    if not pointer.is_file():
        raise CheckpointError(f"{run}: no checkpoint yet (no '{LATEST}' file)")
    name = pointer.read_text(errors="replace").strip()
    folder = run / name
    # `latest` names a folder of the run itself, never a path elsewhere.
    if not name or Path(name).name != name or not folder.is_dir():
        raise CheckpointError(f"{pointer}: names {name!r}, which is not a checkpoint of {run}")
    return folder


def _require(file: Path, state: dict[str, Any], keys: tuple[str, ...]) -> None:
    missing = [key for key in keys if key not in state]
    if missing or not isinstance(state.get("config"), dict):
        raise CheckpointError(f"{file}: corrupt (lacks {', '.join(missing) or 'config'})")


def _tensors(file: Path) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors; CheckpointError if it is missing, truncated or not one."""
    if not file.is_file():
        raise CheckpointError(f"{file}: missing from the checkpoint")
    try:
        return load_file(str(file))
    except SafetensorError as error:
        raise CheckpointError(f"{file}: not a complete safetensors file ({error})") from None


def _split_optimizer(
    state: dict[str, Any] | None,
) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """Tensors of an optimizer state dict keyed "state/<param>/<name>", the rest as JSON."""
    if state is None:
        return {}, None
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for param, values in state["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state/{param}/{name}"] = value.detach().contiguous()
            else:
                scalars.setdefault(str(param), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _join_optimizer(
    tensors: dict[str, torch.Tensor], rest: dict[str, Any] | None
) -> dict[str, Any] | None:
    if rest is None:
        return None
    state: dict[int | str, dict[str, Any]] = {}
    for key, tensor in tensors.items():
        _, param, name = key.split("/", 2)
        state.setdefault(_param_key(param), {})[name] = tensor
    for param, values in rest["scalars"].items():
        state.setdefault(_param_key(param), {}).update(values)
    return {"state": state, "param_groups": rest["param_groups"]}


def _param_key(text: str) -> int | str:
    """torch keys optimizer state by parameter index, torch.distributed by parameter name."""
    return int(text) if text.isdigit() else text


def _contiguous(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: t.detach().contiguous() for name, t in tensors.items()}


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
