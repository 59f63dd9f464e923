"""Training losses of an ensemble prediction against its target tokens.

Every loss takes one field's ensemble (B, M, E, P) and target (B, M, P) (`model.io.FieldOutput`
and `masking.mask_batch`) and returns a scalar. Losses live in a registry by name
(`LOSSES`, `register_loss`); `combined_loss` weighs them per field and per loss.

The ensemble spread is the unbiased standard deviation over members (as `FieldOutput.std`),
computed as sqrt(var + SPREAD_EPS) so that its gradient stays finite when members coincide.
Losses that need a spread (stats, crps_gaussian, crps_fair) need at least two members.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from pydantic import BaseModel, ConfigDict, NonNegativeFloat, field_validator

from atmorep_core.config_errors import validate_section
from atmorep_core.errors import ConfigError
from atmorep_core.model.io import FieldOutput

__all__ = [
    "LOSSES",
    "LossBreakdown",
    "LossConfig",
    "combined_loss",
    "ensemble_spread",
    "fair_crps",
    "gaussian_crps",
    "register_loss",
    "unnormalised_gaussian",
]

SPREAD_EPS = 1e-8  # added to the variance before the square root

LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""(ensemble (B, M, E, P), target (B, M, P)) -> scalar."""

LOSSES: dict[str, LossFunction] = {}


def register_loss(name: str) -> Callable[[LossFunction], LossFunction]:
    """Add a loss to the registry under `name` (the key recipes use)."""

    def add(function: LossFunction) -> LossFunction:
        if name in LOSSES:
            raise ValueError(f"loss {name!r} is registered twice")
        LOSSES[name] = function
        return function

    return add


# --- scores of one value: element-wise, any shape --------------------------------------------


def ensemble_spread(ensemble: torch.Tensor) -> torch.Tensor:  # (B, M, P)
    """Unbiased standard deviation over the members of (B, M, E, P), kept differentiable."""
    if ensemble.shape[2] < 2:
        raise ValueError(f"a spread needs at least 2 ensemble members, got {ensemble.shape[2]}")
    return torch.sqrt(ensemble.var(dim=2) + SPREAD_EPS)


def unnormalised_gaussian(y: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """G(y; mu, sigma) = exp(-(y - mu)^2 / (2 sigma^2)): 1 at the mean, no 1/(sigma sqrt(2 pi))."""
    return torch.exp(-0.5 * ((y - mu) / sigma) ** 2)


def gaussian_crps(y: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """CRPS of N(mu, sigma^2) at y in closed form (Gneiting et al. 2005, eq. 5).

    sigma (z (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi)), z = (y - mu) / sigma.
    """
    z = (y - mu) / sigma
    cdf = 0.5 * (1.0 + torch.erf(z / math.sqrt(2.0)))
    pdf = torch.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return sigma * (z * (2.0 * cdf - 1.0) + 2.0 * pdf - 1.0 / math.sqrt(math.pi))


def fair_crps(members: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The fair (unbiased) ensemble CRPS of members (..., m) at y (...), shape (...).

        mean_i |x_i - y| - 1 / (2 m (m - 1)) sum_{i,j} |x_i - x_j|

    The spread term is evaluated on the sorted members: with x_(1) <= ... <= x_(m),
    sum_{i,j} |x_i - x_j| = 2 sum_k (2k - m - 1) x_(k), in O(m log m) time and O(m) memory
    instead of a (..., m, m) pairwise tensor. Why the spread gradient survives: the term is a
    linear form of the sorted members themselves (nothing detached, no precomputed kernel), and
    sorting is a permutation whose backward pass routes each rank's gradient to the member that
    holds that rank. So member x_(k) gets sign(x_(k) - y) / m - (2k - m - 1) / (m (m - 1)): the
    second part pushes the outer members outwards and the inner ones inwards, which is what
    widens or narrows the ensemble. The issue reports that the original's kernel CRPS lost this
    term's gradient; tests/test_losses.py checks it against finite differences.
    """
    m = members.shape[-1]
    if m < 2:
        raise ValueError(f"the fair ensemble CRPS needs at least 2 members, got {m}")
    skill = (members - y.unsqueeze(-1)).abs().mean(dim=-1)  # (...)
    ranked = members.sort(dim=-1).values  # (..., m)
    rank = torch.arange(1, m + 1, device=members.device, dtype=members.dtype)  # (m,)
    spread = (ranked * (2.0 * rank - m - 1.0)).sum(dim=-1) / (m * (m - 1))  # (...)
    return skill - spread


# --- registered losses: (ensemble (B, M, E, P), target (B, M, P)) -> scalar -------------------


@register_loss("mse")
def mse_of_mean(ensemble: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the ensemble mean."""
    return ((ensemble.mean(dim=2) - target) ** 2).mean()


@register_loss("mse_ensemble")
def ensemble_mse(ensemble: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over members of each member's mean squared error (AtmoRep's 'mse_ensemble')."""
    return ((ensemble - target.unsqueeze(2)) ** 2).mean()


@register_loss("stats")
def statistical_loss(
    ensemble: torch.Tensor, target: torch.Tensor, spread_weight: float = 1.0
) -> torch.Tensor:
    """AtmoRep's statistical loss: mean |1 - G(y; mu, sigma)|^2 + spread_weight mean sqrt(sigma).

    G is the unnormalised Gaussian of the ensemble mean and spread at the target: 1 where the
    target sits on the mean, so the first term rewards a mean close to y relative to the spread
    and a spread wide enough to cover the error. Alone it would grow sigma without bound; the
    second term is the original's regulariser against that (idea from clessig/atmorep,
    atmorep/core/trainer.py, Trainer_Base.loss, 'stats': mean((G - 1)^2) + mean(sqrt(|sigma|))).
    """
    mu = ensemble.mean(dim=2)  # (B, M, P)
    sigma = ensemble_spread(ensemble)  # (B, M, P)
    miss = 1.0 - unnormalised_gaussian(target, mu, sigma)  # (B, M, P)
    return (miss**2).mean() + spread_weight * torch.sqrt(sigma).mean()


@register_loss("crps_gaussian")
def gaussian_crps_loss(ensemble: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean closed-form CRPS of N(ensemble mean, ensemble spread^2) at the target."""
    return gaussian_crps(target, ensemble.mean(dim=2), ensemble_spread(ensemble)).mean()


@register_loss("crps_fair")
def fair_crps_loss(ensemble: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean fair ensemble CRPS at the target."""
    return fair_crps(ensemble.movedim(2, -1), target).mean()  # members last: (B, M, P, E)


# --- combination ------------------------------------------------------------------------------


class LossConfig(BaseModel):
    """Which losses train the model and how fields are weighted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    losses: dict[str, NonNegativeFloat] = {"mse_ensemble": 1.0, "stats": 1.0}
    """Loss name (a key of LOSSES) -> weight; the same losses for every field."""
    field_weights: dict[str, NonNegativeFloat] = {}
    """Field name -> weight of all its losses; fields not listed weigh 1."""

    @field_validator("losses")
    @classmethod
    def _known_losses(cls, losses: dict[str, float]) -> dict[str, float]:
        if not losses:
            raise ValueError("at least one loss is needed")
        for name in losses:
            if name not in LOSSES:
                raise ValueError(f"unknown loss {name!r}; known: {', '.join(sorted(LOSSES))}")
        return losses

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> LossConfig:
        """Validate a recipe's loss section; a ConfigError names the first bad key."""
        return validate_section(cls, data, "loss.")


@dataclass(frozen=True)
class LossBreakdown:
    """The loss to minimise and its parts, for logging."""

    total: torch.Tensor  # () differentiable
    components: dict[str, dict[str, torch.Tensor]]  # field -> loss name -> () detached, unweighted


def combined_loss(
    outputs: Mapping[str, FieldOutput], targets: Mapping[str, torch.Tensor], config: LossConfig
) -> LossBreakdown:
    """sum_f w_f sum_l w_l loss_l(f) / sum_f w_f over the fields of `outputs`.

    Dividing by the field weights keeps the scale when fields are added (as AtmoRep did).
    """
    _check_field_weights(outputs, targets, config)
    terms: list[torch.Tensor] = []
    components: dict[str, dict[str, torch.Tensor]] = {}
    for field, output in outputs.items():
        values = {name: LOSSES[name](output.ensemble, targets[field]) for name in config.losses}
        field_weight = config.field_weights.get(field, 1.0)
        terms += [field_weight * config.losses[name] * value for name, value in values.items()]
        components[field] = {name: value.detach() for name, value in values.items()}
    field_sum = sum(config.field_weights.get(field, 1.0) for field in outputs)
    return LossBreakdown(torch.stack(terms).sum() / max(field_sum, 1e-12), components)


def _check_field_weights(
    outputs: Mapping[str, FieldOutput], targets: Mapping[str, torch.Tensor], config: LossConfig
) -> None:
    if not outputs:
        raise ValueError("no outputs to score")
    for field in config.field_weights:
        if field not in outputs:
            raise ConfigError(f"loss.field_weights.{field}: no such field among the outputs")
    for field, output in outputs.items():
        if field not in targets:
            raise ValueError(f"no targets for field {field!r}")
        b, m, _, p = output.ensemble.shape
        if tuple(targets[field].shape) != (b, m, p):
            raise ValueError(
                f"{field}: targets {tuple(targets[field].shape)} do not match the ensemble "
                f"{tuple(output.ensemble.shape)} (B, M, E, P)"
            )
