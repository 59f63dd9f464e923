"""A trained multiformer ready to answer questions: weights, architecture and what it learned on.

Loaded from a checkpoint (or a run folder's latest one) without its optimizer state; the model
is put in evaluation mode, so dropout is off and the answer depends only on the inputs. A
checkpoint that is missing, corrupt, or whose weights do not fit its configuration raises
CheckpointError (exit code 4) naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from atmorep_core.errors import CheckpointError, ConfigError
from atmorep_core.model import checkpoint
from atmorep_core.model.config import ModelConfig, model_config_from_dict
from atmorep_core.model.multiformer import Multiformer


@dataclass(frozen=True)
class TrainedModel:
    """A multiformer with the configuration and normalisation it was trained with."""

    model: Multiformer
    config: ModelConfig
    normalisation: dict[str, Any]  # per field, as the trainer saved it (training/trainer.py)
    recipe: dict[str, Any]  # the resolved training recipe
    step: int
    folder: Path  # the checkpoint folder itself (not the run)

    @property
    def extent(self) -> tuple[int, int, int]:
        """Points of one neighbourhood in (time, lat, lon): the same for every field."""
        field = self.config.fields[0]
        t, y, x = (c * s for c, s in zip(field.token_count, field.token_size, strict=True))
        return t, y, x

    @property
    def training_store(self) -> Path:
        """The store it was trained on (the local normalisation statistics lie there)."""
        return Path(next(iter(self.normalisation.values()))["store"])

    def trained_strategies(self, kind: str) -> list[dict[str, Any]]:
        """The masking strategies of this kind it was trained with, mixtures' choices included."""
        fields = (self.recipe.get("training") or {}).get("masking", {}).get("fields", {})
        strategies = [c["strategy"] for s in fields.values() for c in s.get("choices", [])]
        strategies += list(fields.values())
        return [s for s in strategies if s.get("kind") == kind]

    def forecast_time_tokens(self) -> int:
        """How many last time tokens the model was trained to forecast (1 if it never was)."""
        return max(
            (s.get("time_tokens", 1) for s in self.trained_strategies("forecast")), default=1
        )


def load_trained(path: Path, device: torch.device | str = "cpu") -> TrainedModel:
    """The model of a checkpoint folder or run folder; CheckpointError if it is not one."""
    folder, _ = checkpoint.read_state(path)
    saved = checkpoint.load(folder, training_state=False)
    state_file = folder / checkpoint.STATE
    config = model_config(folder, saved.config)
    model = Multiformer(config)
    try:
        model.load_state_dict(saved.model)
    except RuntimeError as error:  # missing, unexpected or misshapen tensors
        detail = " ".join(str(error).split()[6:])  # after "Error(s) in loading state_dict for X:"
        raise CheckpointError(
            f"{folder / 'model.safetensors'}: does not fit the model of {state_file} "
            f"({detail[:160]})"
        ) from None
    model.to(device).eval()
    return TrainedModel(model, config, saved.normalisation, saved.config, saved.step, folder)


def model_config(folder: Path, recipe: dict[str, Any]) -> ModelConfig:
    """The model configuration of a checkpoint's resolved recipe; CheckpointError if invalid."""
    try:
        return model_config_from_dict(recipe["model"])
    except ConfigError as error:
        raise CheckpointError(
            f"{folder / checkpoint.STATE}: its model configuration is invalid: {error}"
        ) from None
