"""Masking strategies: which tokens of one field become targets, and how each one is distorted.

A strategy looks only at the token grid of a field and a random generator, and returns a
`TokenPlan`: per sample the flat indices of the target tokens and a `Distortion` for each.
Applying the plan to the tokens is `masking.apply_plan`; choosing strategies per field is
`masking.MaskingConfig`.

Shapes (B batch, L levels, (n_t, n_y, n_x) tokens per level, N = L * n_t * n_y * n_x tokens,
M targets per sample, the same M for every sample of a batch so that targets stack):

    TokenPlan.target_index  (B, M) int64, flat indices into N in (L, n_t, n_y, n_x) C order,
                            ascending within each sample
    TokenPlan.distortion    (B, M) int64, a Distortion value per target

Each strategy is one pydantic model (`extra="forbid"`, so a typo is rejected by name) that is
both its own configuration and an implementation of the `MaskingStrategy` protocol; the
discriminated union `StrategyConfig` (on the key `kind`) is the registry. A new strategy is one
class here plus one entry in `_Plain` (the strategies a mixture may choose from).

`MixtureStrategy` varies the strategy from step to step (AtmoRep trains mostly on BERT, on some
steps on forecasts): each plan draws one of its choices, with probability proportional to the
choice's weight, and delegates to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum
from typing import Annotated, Literal, Protocol

import torch
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, model_validator

from atmorep_core.errors import ConfigError

__all__ = [
    "BertStrategy",
    "Distortion",
    "DownscalingStrategy",
    "ForecastStrategy",
    "IdentityStrategy",
    "InterpolationStrategy",
    "MaskingStrategy",
    "MixtureChoice",
    "MixtureStrategy",
    "StrategyConfig",
    "TokenGrid",
    "TokenPlan",
]

Triple = tuple[int, int, int]


class Distortion(IntEnum):
    """What happens to a target token before the model sees it."""

    KEEP = 0  # visible and unchanged (AtmoRep's untouched share: still predicted and scored)
    MASK = 1  # hidden: `masked` True and its values zeroed (the normalised mean)
    NOISE = 2  # visible, with Gaussian noise added
    COARSEN = 3  # visible, replaced by its block means repeated back to full resolution


# In the order of BertStrategy's fraction edges; past the last edge a target is kept.
_BERT_KINDS = torch.tensor([Distortion.MASK, Distortion.NOISE, Distortion.COARSEN, Distortion.KEEP])


@dataclass(frozen=True)
class TokenGrid:
    """The token layout of one field: what a strategy needs to know of the tokens."""

    levels: int  # L
    counts: Triple  # (n_t, n_y, n_x) tokens per level
    size: Triple  # (t, y, x) grid points per token

    @classmethod
    def of(cls, tokens: torch.Tensor) -> TokenGrid:
        """The grid of a batch's tokens (B, L, n_t, n_y, n_x, t, y, x)."""
        _, levels, n_t, n_y, n_x, t, y, x = tokens.shape
        return cls(levels, (n_t, n_y, n_x), (t, y, x))

    @property
    def num_tokens(self) -> int:
        """N = L * n_t * n_y * n_x."""
        return self.levels * math.prod(self.counts)

    def flat_index(self) -> torch.Tensor:  # (L, n_t, n_y, n_x) int64
        """The flat index of every token, laid out on the grid (for slicing whole axes)."""
        return torch.arange(self.num_tokens).reshape(self.levels, *self.counts)


@dataclass(frozen=True)
class TokenPlan:
    """Targets of one field for a batch and the distortion applied to each."""

    target_index: torch.Tensor  # (B, M) int64, ascending within each sample
    distortion: torch.Tensor  # (B, M) int64 Distortion values
    noise_strength: float = 0.0  # noise std relative to the field's std over the batch
    coarsen_factor: Triple = (1, 1, 1)  # block size in (t, y, x) for COARSEN tokens


class MaskingStrategy(Protocol):
    """Chooses the targets of one field; deterministic given the generator's state."""

    def plan(self, grid: TokenGrid, batch_size: int, generator: torch.Generator) -> TokenPlan:
        """A plan for `batch_size` samples; ConfigError('key: why') if it cannot fit the grid."""
        ...


class _Strategy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BertStrategy(_Strategy):
    """AtmoRep's BERT mixture: a random share of tokens, each masked, noised, coarsened or kept.

    The masking ratio is drawn uniformly in [0, max_ratio) once per batch, so that every sample
    has the same M = max(1, ceil(ratio * N)) targets; the positions are drawn per sample. Each
    target independently becomes MASK, NOISE or COARSEN with the given fractions, and KEEP with
    the remainder (AtmoRep: 80 / 10 / 10 with the last 10 % untouched).
    """

    kind: Literal["BERT"] = "BERT"
    max_ratio: float = Field(default=0.5, gt=0.0, le=1.0)
    """Upper bound of the share of tokens that become targets (AtmoRep: 0.5 or 0.75)."""
    mask_fraction: float = Field(default=0.8, ge=0.0, le=1.0)
    """Share of targets that are hidden from the model."""
    noise_fraction: float = Field(default=0.1, ge=0.0, le=1.0)
    """Share of targets left visible with Gaussian noise added."""
    coarsen_fraction: float = Field(default=0.1, ge=0.0, le=1.0)
    """Share of targets left visible at a coarser resolution."""
    noise_strength: float = Field(default=0.1, ge=0.0)
    """Noise standard deviation relative to the field's standard deviation over the batch."""
    coarsen_factor: tuple[PositiveInt, PositiveInt, PositiveInt] = (1, 3, 3)
    """Block size in (t, y, x) that coarsened tokens are averaged over; divides the token size."""

    @model_validator(mode="after")
    def _fractions_fit(self) -> BertStrategy:
        total = self.mask_fraction + self.noise_fraction + self.coarsen_fraction
        if total > 1.0 + 1e-9:
            raise ValueError(
                f"mask_fraction + noise_fraction + coarsen_fraction is {total:g}, more than 1"
            )
        return self

    def plan(self, grid: TokenGrid, batch_size: int, generator: torch.Generator) -> TokenPlan:
        self._check_coarsening(grid)
        n = grid.num_tokens
        # One ratio for the batch: targets of all samples must stack to (B, M, P).
        ratio = float(torch.rand((), generator=generator)) * self.max_ratio
        m = max(1, math.ceil(ratio * n))
        order = torch.rand(batch_size, n, generator=generator).argsort(dim=1)  # (B, N)
        target_index = order[:, :m].sort(dim=1).values  # (B, M)
        return TokenPlan(
            target_index,
            self._draw_distortions((batch_size, m), generator),
            self.noise_strength,
            self.coarsen_factor,
        )

    def _draw_distortions(self, shape: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
        """A categorical draw per target, with the fractions as probabilities."""
        shares = [self.mask_fraction, self.noise_fraction, self.coarsen_fraction]
        edges = torch.tensor(shares).cumsum(0)  # (3,) upper edges of MASK, NOISE, COARSEN
        uniform = torch.rand(shape, generator=generator)  # (B, M) in [0, 1)
        return _BERT_KINDS[torch.bucketize(uniform, edges, right=True)]  # (B, M)

    def _check_coarsening(self, grid: TokenGrid) -> None:
        if self.coarsen_fraction == 0.0:
            return
        if any(s % f for s, f in zip(grid.size, self.coarsen_factor, strict=True)):
            raise ConfigError(
                f"coarsen_factor: {self.coarsen_factor} does not divide the token size {grid.size}"
            )


class ForecastStrategy(_Strategy):
    """Hide the last `time_tokens` time tokens (all levels, all positions): they are the targets."""

    kind: Literal["forecast"] = "forecast"
    time_tokens: PositiveInt = 1
    """How many of the last time tokens to predict; fewer than the field's n_t."""

    def plan(self, grid: TokenGrid, batch_size: int, generator: torch.Generator) -> TokenPlan:
        n_t = grid.counts[0]
        if self.time_tokens >= n_t:
            raise ConfigError(
                f"time_tokens: {self.time_tokens} leaves no time token to start from (n_t = {n_t})"
            )
        return _time_slice_plan(grid, batch_size, range(n_t - self.time_tokens, n_t))


class InterpolationStrategy(_Strategy):
    """Hide whole time-token slices (all levels, all positions), e.g. the middle one."""

    kind: Literal["temporal_interpolation"] = "temporal_interpolation"
    time_slices: tuple[NonNegativeInt, ...] | None = None
    """Time-token indices to predict; None: the middle one, n_t // 2 (as AtmoRep)."""

    def plan(self, grid: TokenGrid, batch_size: int, generator: torch.Generator) -> TokenPlan:
        n_t = grid.counts[0]
        slices = sorted(set(self.time_slices)) if self.time_slices is not None else [n_t // 2]
        if not slices or slices[-1] >= n_t or len(slices) == n_t:
            raise ConfigError(
                f"time_slices: {self.time_slices} must be some but not all of 0 .. {n_t - 1}"
            )
        return _time_slice_plan(grid, batch_size, slices)


class IdentityStrategy(_Strategy):
    """Nothing hidden, every token a target: autoencoding (assembly checks, denoising)."""

    kind: Literal["identity"] = "identity"

    def plan(self, grid: TokenGrid, batch_size: int, generator: torch.Generator) -> TokenPlan:
        n = grid.num_tokens
        target_index = torch.arange(n).expand(batch_size, n)  # (B, N)
        return TokenPlan(target_index, torch.full((batch_size, n), int(Distortion.KEEP)))


class DownscalingStrategy(_Strategy):
    """Every token shown only as its block means and predicted in full: downscaling, the fine
    field from a coarse one (AtmoRep's coarsening distortion on every token). A coarse input put
    on the fine grid block by block (nearest neighbour) is its own block means, so training on
    fine fields asks exactly what a product on coarse input asks."""

    kind: Literal["downscaling"] = "downscaling"
    factor: tuple[PositiveInt, PositiveInt, PositiveInt] = (1, 4, 4)
    """Fine grid points per coarse one in (t, y, x); divides the token size."""

    def plan(self, grid: TokenGrid, batch_size: int, generator: torch.Generator) -> TokenPlan:
        if any(s % f for s, f in zip(grid.size, self.factor, strict=True)):
            raise ConfigError(f"factor: {self.factor} does not divide the token size {grid.size}")
        n = grid.num_tokens
        target_index = torch.arange(n).expand(batch_size, n)  # (B, N)
        coarsened = torch.full((batch_size, n), int(Distortion.COARSEN))
        return TokenPlan(target_index, coarsened, coarsen_factor=self.factor)


def _time_slice_plan(grid: TokenGrid, batch_size: int, time_slices: range | list[int]) -> TokenPlan:
    """Mask every token of the given time-token slices, the same for all samples."""
    chosen = grid.flat_index()[:, list(time_slices)].flatten()  # (M,) ascending: C order
    target_index = chosen.expand(batch_size, -1)  # (B, M)
    return TokenPlan(target_index, torch.full(target_index.shape, int(Distortion.MASK)))


_Plain = (
    BertStrategy | ForecastStrategy | InterpolationStrategy | IdentityStrategy | DownscalingStrategy
)


class MixtureChoice(BaseModel):
    """One strategy of a mixture and its weight."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weight: float = Field(default=1.0, gt=0.0, allow_inf_nan=False)
    """Relative frequency: drawn with probability weight / (sum of the mixture's weights)."""
    strategy: Annotated[_Plain, Field(discriminator="kind")]
    """Any strategy but another mixture."""


class MixtureStrategy(_Strategy):
    """A strategy drawn per plan (per step) among weighted choices, e.g. mostly BERT, some forecast.

    The draw is the plan's first random number, a single uniform one, so fields planned from the
    same seed (`MaskingConfig.synced`) with the same weights pick the same choice, and the
    chosen strategy's own draws then follow in sync as without a mixture.
    """

    kind: Literal["mixture"] = "mixture"
    choices: tuple[MixtureChoice, ...] = Field(min_length=1)
    """The strategies and their weights."""

    def plan(self, grid: TokenGrid, batch_size: int, generator: torch.Generator) -> TokenPlan:
        self._check_choices(grid)
        index = self.draw(generator)
        return self.choices[index].strategy.plan(grid, batch_size, generator)

    def draw(self, generator: torch.Generator) -> int:
        """The index of a choice, with probability proportional to its weight (one draw)."""
        weights = torch.tensor([choice.weight for choice in self.choices], dtype=torch.float64)
        edges = (weights.cumsum(0) / weights.sum())[:-1]  # upper edges of all but the last
        uniform = torch.rand((), generator=generator, dtype=torch.float64)
        return int(torch.bucketize(uniform, edges, right=True))

    def _check_choices(self, grid: TokenGrid) -> None:
        # Every choice must fit the grid from the first step, not only once it is drawn: each
        # plans one sample from a generator of its own, leaving the caller's draws alone.
        for index, choice in enumerate(self.choices):
            try:
                choice.strategy.plan(grid, 1, torch.Generator().manual_seed(0))
            except ConfigError as error:
                raise ConfigError(f"choices.{index}.strategy.{error}") from None


StrategyConfig = Annotated[_Plain | MixtureStrategy, Field(discriminator="kind")]
"""One field's strategy, chosen by its `kind`."""
