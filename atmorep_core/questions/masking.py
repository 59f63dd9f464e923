"""Turn a sampler's Batch into the model's question (FieldInput) and the answer to score it on.

Per field a strategy (`strategies.py`) chooses the target tokens and a distortion for each; this
module applies them and cuts out the targets:

    batch.tokens[field]   (B, L, n_t, n_y, n_x, t, y, x) normalised, left untouched
    inputs[field].tokens  (B, L, n_t, n_y, n_x, t, y, x) masked tokens zeroed, noised and
                          coarsened tokens changed, every other token as in the batch
    inputs[field].masked  (B, N) bool, True only for MASK targets
    inputs[field].target_index (B, M) int64, every target whatever its distortion
    targets[field]        (B, M, P) the undistorted tokens at target_index, P = t * y * x

Fields are masked independently (each its own draw) or in sync (`MaskingConfig.synced`):

- In sync, every field plans from the same seed. A plan depends only on the strategy, the
  token grid, the batch size and that seed, so fields with the same strategy and the same token
  grid (L, n_t, n_y, n_x) get identical target positions and identical distortions.
- Fields whose token grids differ cannot share positions token by token. In sync they share the
  draws that do not depend on the grid: the BERT masking ratio (the first draw), so the same
  share of tokens becomes targets; forecast and temporal interpolation choose whole time-token
  slices, so with the same n_t they are in sync on the time tokens whatever the spatial grid.
- A mixture's choice is the first draw of its plan, so synced fields whose mixtures have the
  same weights pick the same choice (and then plan in sync as above).
- Noise values are always drawn per field from the caller's generator, so synced fields are
  not perturbed by the same realisation.

Everything is deterministic given the generator's state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from pydantic import BaseModel, ConfigDict, Field

from atmorep_core.config_errors import validate_section
from atmorep_core.data.batch import Batch
from atmorep_core.errors import ConfigError
from atmorep_core.model.io import FieldInput
from atmorep_core.questions.strategies import (
    Distortion,
    MaskingStrategy,
    MixtureStrategy,
    StrategyConfig,
    TokenGrid,
    TokenPlan,
)

__all__ = ["MaskingConfig", "apply_plan", "coarsen_tokens", "mask_batch", "split_mixtures"]

_SEED_BOUND = 2**62


class MaskingConfig(BaseModel):
    """How each field of a batch is masked for training."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fields: dict[str, StrategyConfig] = Field(min_length=1)
    """Field name -> its strategy; every field of the batch needs one."""
    synced: bool = False
    """Plan all fields from one seed (same positions where token grids agree; module docstring)."""

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> MaskingConfig:
        """Validate a recipe's masking section; a ConfigError names the first bad key."""
        return validate_section(cls, data, "masking.", _recipe_key)


def _recipe_key(loc: Sequence[int | str]) -> list[str]:
    """The key as the recipe spells it: pydantic puts the strategy's kind after the field name,
    and in a mixture after each choice's `strategy`:

        fields.<name>.<kind>.<key>                              -> fields.<name>.<key>
        fields.<name>.mixture.choices.<i>.strategy.<kind>.<key> -> ....choices.<i>.strategy.<key>
    """
    parts = [str(part) for part in loc]
    if parts[:1] != ["fields"]:
        return parts
    kinds = {2} | {i + 1 for i in range(3, len(parts)) if parts[i] == "strategy"}
    return [part for i, part in enumerate(parts) if i not in kinds]


def split_mixtures(configs: Mapping[str, MaskingConfig]) -> dict[str, MaskingConfig]:
    """Named masking configurations with every mixture's choices scored apart (validation).

    A configuration `name` whose fields hold mixtures becomes `name.<i>.<kind>` for each choice
    i, where every mixture field takes its i-th choice (as synced mixtures of the same weights
    pick together); the other configurations stay as they are. Mixtures of one configuration
    need the same number of choices, or a ConfigError names the first field that differs.
    """
    split: dict[str, MaskingConfig] = {}
    for name, config in configs.items():
        mixtures = {f: s for f, s in config.fields.items() if isinstance(s, MixtureStrategy)}
        if not mixtures:
            split[name] = config
            continue
        for i in range(_choice_count(mixtures)):
            chosen = {f: s.choices[i].strategy for f, s in mixtures.items()}
            kinds = "+".join(dict.fromkeys(s.kind for s in chosen.values()))
            fields = {**config.fields, **chosen}
            split[f"{name}.{i}.{kinds}"] = config.model_copy(update={"fields": fields})
    return split


def _choice_count(mixtures: Mapping[str, MixtureStrategy]) -> int:
    (first, mixture), *others = mixtures.items()
    for field, other in others:
        if len(other.choices) != len(mixture.choices):
            raise ConfigError(
                f"masking.fields.{field}.choices: {len(other.choices)} choices, {first} has "
                f"{len(mixture.choices)}: validation scores the i-th choices of all fields together"
            )
    return len(mixture.choices)


def mask_batch(
    batch: Batch, config: MaskingConfig, generator: torch.Generator
) -> tuple[dict[str, FieldInput], dict[str, torch.Tensor]]:
    """The model's inputs and the (B, M, P) targets of every field of the batch."""
    names = tuple(batch.tokens)
    _check_fields(names, config)
    seeds = _plan_seeds(len(names), config.synced, generator)
    inputs, targets = {}, {}
    for name, seed in zip(names, seeds, strict=True):
        tokens = batch.tokens[name]  # (B, L, n_t, n_y, n_x, t, y, x)
        grid = TokenGrid.of(tokens)
        plan = _plan_field(name, config.fields[name], grid, tokens.shape[0], seed)
        truth = None if batch.targets is None else batch.targets[name]
        inputs[name], targets[name] = apply_plan(tokens, batch.alpha[name], plan, generator, truth)
    return inputs, targets


def _check_fields(names: tuple[str, ...], config: MaskingConfig) -> None:
    # A configured field the batch lacks is most likely a typo in the recipe.
    for name in config.fields:
        if name not in names:
            raise ConfigError(f"masking.fields.{name}: no such field in the batch {list(names)}")
    for name in names:
        if name not in config.fields:
            raise ConfigError(f"masking.fields: no strategy for the batch's field {name!r}")


def _plan_seeds(count: int, synced: bool, generator: torch.Generator) -> list[int]:
    draws = 1 if synced else count
    seeds = [_draw_seed(generator) for _ in range(draws)]
    return seeds * count if synced else seeds


def _draw_seed(generator: torch.Generator) -> int:
    return int(torch.randint(_SEED_BOUND, (), generator=generator, device=generator.device))


def _plan_field(
    name: str, strategy: MaskingStrategy, grid: TokenGrid, batch_size: int, seed: int
) -> TokenPlan:
    # Each plan draws from its own generator so that synced fields replay the same draws.
    plan_generator = torch.Generator().manual_seed(seed)
    try:
        return strategy.plan(grid, batch_size, plan_generator)
    except ConfigError as error:
        raise ConfigError(f"masking.fields.{name}.{error}") from None


def apply_plan(
    tokens: torch.Tensor,
    alpha: torch.Tensor,
    plan: TokenPlan,
    generator: torch.Generator,
    truth: torch.Tensor | None = None,
) -> tuple[FieldInput, torch.Tensor]:
    """Distort the planned tokens; return the model input and the (B, M, P) undistorted targets.

    tokens (B, L, n_t, n_y, n_x, t, y, x) and alpha (B, L, n_t, n_y, n_x, 7) are not modified.
    Noise is drawn from `generator`, scaled by the field's standard deviation over the batch.
    `truth`, shaped as tokens, gives the targets instead of the tokens (paired training).
    """
    b, m = plan.target_index.shape
    index = plan.target_index.to(tokens.device).contiguous()  # (B, M), may come expanded
    rows = torch.arange(b, device=tokens.device).unsqueeze(1).expand(b, m)  # (B, M)
    flat = tokens.flatten(1, 4)  # (B, N, t, y, x)
    answers = flat if truth is None else truth.flatten(1, 4)  # (B, N, t, y, x)
    targets = answers[rows, index].reshape(b, m, -1)  # (B, M, P), a copy
    distorted = flat.clone()  # (B, N, t, y, x)
    masked = torch.zeros(flat.shape[:2], dtype=torch.bool, device=tokens.device)  # (B, N)
    context = _DistortionContext(plan, tokens.std().detach(), generator)
    kinds = plan.distortion.to(tokens.device)  # (B, M)
    for kind, distort in _DISTORTIONS.items():
        chosen = kinds == kind  # (B, M)
        r, i = rows[chosen], index[chosen]  # (K,), (K,)
        distorted[r, i] = distort(distorted[r, i], context)  # (K, t, y, x)
    hidden = kinds == Distortion.MASK  # (B, M)
    masked[rows[hidden], index[hidden]] = True
    field_input = FieldInput(distorted.reshape(tokens.shape), alpha, masked, index)
    return field_input, targets


@dataclass(frozen=True)
class _DistortionContext:
    """What the distortion functions need besides the tokens they change."""

    plan: TokenPlan
    field_std: torch.Tensor  # () the field's std over the whole batch: the noise unit
    generator: torch.Generator  # noise draws


def _mask(tokens: torch.Tensor, context: _DistortionContext) -> torch.Tensor:
    # Zero is the mean of normalised data; the model also gets `masked`, so it never relies on it.
    return torch.zeros_like(tokens)  # (K, t, y, x)


def _add_noise(tokens: torch.Tensor, context: _DistortionContext) -> torch.Tensor:
    generator = context.generator
    noise = torch.randn(tokens.shape, generator=generator, device=generator.device)  # (K, t, y, x)
    scale = context.plan.noise_strength * context.field_std
    return tokens + scale * noise.to(tokens)  # (K, t, y, x)


def _coarsen(tokens: torch.Tensor, context: _DistortionContext) -> torch.Tensor:
    return coarsen_tokens(tokens, context.plan.coarsen_factor)


def coarsen_tokens(tokens: torch.Tensor, factor: tuple[int, int, int]) -> torch.Tensor:
    """Replace each (ft, fy, fx) block of (K, t, y, x) tokens by its mean, at full resolution."""
    k, t, y, x = tokens.shape
    ft, fy, fx = factor
    blocks = tokens.reshape(k, t // ft, ft, y // fy, fy, x // fx, fx)
    means = blocks.mean(dim=(2, 4, 6), keepdim=True)  # (K, t/ft, 1, y/fy, 1, x/fx, 1)
    return means.expand_as(blocks).reshape(k, t, y, x)


# The registry of distortions; KEEP has no entry because it changes nothing.
_DISTORTIONS: dict[Distortion, Callable[[torch.Tensor, _DistortionContext], torch.Tensor]] = {
    Distortion.MASK: _mask,
    Distortion.NOISE: _add_noise,
    Distortion.COARSEN: _coarsen,
}
