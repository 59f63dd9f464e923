"""A published model folder `id<ID>/`: `model_id<ID>.json` and `AtmoRep_id<ID>.mod`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from atmorep_core.errors import CheckpointError
from atmorep_core.model.config import ModelConfig
from atmorep_core.model.multiformer import Multiformer
from atmorep_core.model.original.config import model_config, read_json, training_section
from atmorep_core.model.original.weights import (
    project_state_dict,
    read_state_dict,
    translate_old_naming,
)


@dataclass(frozen=True)
class PublishedModel:
    """A published model translated: this project's configuration and state dict."""

    model_id: str
    config: ModelConfig
    state: dict[str, torch.Tensor]
    training: dict[str, Any] = field(default_factory=dict)  # the recipe's `training:` section

    def build(self) -> Multiformer:
        """The Multiformer with the published weights, in eval mode."""
        model = Multiformer(self.config)
        model.load_state_dict(self.state, strict=True)
        return model.eval()


def model_id(folder: Path) -> str:
    """The ID of a model folder, from its `model_id<ID>.json` (the folder's name as fallback)."""
    found = sorted(folder.glob("model_id*.json"))
    if len(found) > 1:
        raise CheckpointError(f"{folder}: holds {len(found)} model_id*.json files, expected one")
    if found:
        return found[0].name.removeprefix("model_id").removesuffix(".json")
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no such model folder")
    return folder.name.removeprefix("id")


def read_published(folder: Path) -> PublishedModel:
    """Read and translate a model folder; ConfigError or CheckpointError naming what is wrong."""
    ident = model_id(folder)
    original = read_json(folder / f"model_id{ident}.json")
    config = model_config(original)
    weights = folder / f"AtmoRep_id{ident}.mod"
    state = translate_old_naming(read_state_dict(weights))
    mapped = project_state_dict(config, state)
    expected = parameter_shapes(config)
    for key, shape in expected.items():
        got = tuple(mapped[key].shape) if key in mapped else None
        if got != shape:
            raise CheckpointError(f"{weights}: {key} is {got} in the weights, {shape} in the model")
    return PublishedModel(ident, config, mapped, training_section(original))


def parameter_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every parameter's shape, from the meta device (nothing allocated)."""
    with torch.device("meta"):
        model = Multiformer(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}
