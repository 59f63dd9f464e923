"""A training recipe: the model, the data it learns from, and how it is trained.

YAML with three sections, validated at the edge so that a typo is rejected by its dotted key:

    model:     the multiformer (model/config.py)
    data:      store, training and validation time windows
    training:  steps, batch, optimiser, masking per field, losses, validation strategies

`--set key=value` overrides any key before validation (`training.steps=50`,
`model.fields.0.embed_dim=128`); the resolved recipe is saved with every checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, field_validator

from atmorep_core.config_errors import validate_section
from atmorep_core.errors import ConfigError
from atmorep_core.model.config import ModelConfig, Recipe
from atmorep_core.questions.masking import MaskingConfig
from atmorep_core.training.losses import LossConfig


class DataSection(BaseModel):
    """Where the training data lies."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    store: Path
    """The store made by `atmorep prepare`."""
    target: Path | None = None
    """Paired training: a store of the same fields, grid and units whose values the model learns
    to answer when shown `store`'s (bias correction: model output in `store`, observations or a
    reanalysis in `target`), normalised with `store`'s statistics; None: `store` itself."""
    train: tuple[datetime, datetime] | None = None
    """First and last time (UTC, inclusive) a training neighbourhood may hold; None: all."""
    validation: tuple[datetime, datetime] | None = None
    """The held-back times validation reads; None: no validation."""
    reader: Literal["auto", "zarr", "tensorstore"] = "auto"
    """Array reader of the sampler (tensorstore is much faster; same values)."""

    @field_validator("store", "target")
    @classmethod
    def _resolved(cls, path: Path | None) -> Path | None:
        """Absolute (`..`, `~` and symlinks resolved): tensorstore refuses `..`, and checkpoints
        record the store for products run from any folder."""
        return None if path is None else path.expanduser().resolve()


class TrainingSection(BaseModel):
    """How the model is trained."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: PositiveInt = 1000
    """Optimizer steps in total."""
    batch_size: PositiveInt = 8
    """Neighbourhoods per step and process."""
    samples_per_epoch: PositiveInt = 4096
    """Monte Carlo positions drawn per epoch (a new draw each epoch)."""
    learning_rate: float = Field(default=3e-4, gt=0)
    """Peak AdamW learning rate."""
    weight_decay: float = Field(default=0.05, ge=0)
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: NonNegativeInt = 100
    """Linear warm-up, then cosine decay to `lr_floor` x the peak."""
    lr_floor: float = Field(default=0.1, ge=0, le=1)
    encoder_lr_scale: float = Field(default=1.0, ge=0, le=1)
    """Learning rate of the embeddings and encoders relative to the rest: 1 trains all alike; 0
    freezes them and 0.1 tunes them lightly when fine-tuning a pre-trained model's decoders and
    tails (`train --init-field`) on a new target (downscaling, bias correction)."""
    grad_clip: float = Field(default=1.0, gt=0)
    """Global gradient-norm clipping."""
    seed: int = 0
    """Seeds weights, data and masking: the same seed gives the same run."""
    checkpoint_every: PositiveInt = 500
    validate_every: PositiveInt = 250
    validation_batches: PositiveInt = 4
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """auto: bf16 autocast on GPU, fp32 on CPU."""
    compile: bool = False
    """torch.compile the model."""
    parallel: Literal["ddp", "fsdp"] = "ddp"
    """Under torchrun: ddp copies the model to every process; fsdp shards it (large presets)."""
    num_workers: NonNegativeInt = 0
    """DataLoader worker processes per rank."""
    masking: dict[str, Any]
    """Per field masking strategy (questions/masking.py), e.g. {fields: {t2m: {kind: BERT}}}."""
    loss: dict[str, Any] = Field(default_factory=dict)
    """Losses and field weights (training/losses.py); default ensemble mse + statistical."""
    validation: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Named masking configurations scored on the validation window (default: `masking`)."""


@dataclass(frozen=True)
class TrainRecipe:
    """A validated recipe and its plain form (saved with checkpoints)."""

    model: ModelConfig
    data: DataSection
    training: TrainingSection
    masking: MaskingConfig
    loss: LossConfig
    validation: dict[str, MaskingConfig]
    raw: dict[str, Any]

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainRecipe:
        recipe = Recipe.from_dict(raw)
        if recipe.data is None or recipe.training is None:
            raise ConfigError("recipe: training needs 'data' and 'training' sections")
        data = validate_section(DataSection, recipe.data, "data.")
        training = validate_section(TrainingSection, recipe.training, "training.")
        masking = MaskingConfig.from_dict(training.masking)
        validation = {
            name: MaskingConfig.from_dict(section) for name, section in training.validation.items()
        } or {"masking": masking}
        return cls(
            recipe.model, data, training, masking, LossConfig.from_dict(training.loss),
            validation, raw,
        )  # fmt: skip


def load(path: Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainRecipe:
    """Read, override and validate a recipe file."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: cannot read the recipe ({error})") from error
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a recipe is a mapping with model, data and training")
    for override in overrides:
        apply_override(raw, override)
    return TrainRecipe.from_dict(raw)


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Set one dotted key (`a.b.0.c=value`; the value is read as YAML) in place."""
    key, sep, text = override.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set {override!r}: expected key=value")
    *parents, last = key.split(".")
    node: Any = raw
    for part in parents:
        node = _child(node, part, key)
    value = yaml.safe_load(text)
    if isinstance(node, list):
        node[_index(node, last, key)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(f"--set {key}: {'.'.join(parents)} is not a section")


def _child(node: Any, part: str, key: str) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, key)]
    if isinstance(node, dict):
        return node.setdefault(part, {})
    raise ConfigError(f"--set {key}: {part!r} is below a value, not a section")


def _index(node: list[Any], part: str, key: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"--set {key}: {part!r} is not an index of a list of {len(node)}")
    return int(part)
