"""What the model takes and returns for one field: the contract between masking and model.

A masking strategy (training) or a product task (inference) decides which tokens the model sees
and which it must predict; the model knows nothing of how that was decided.

Shapes, per field (B batch, L levels, (n_t, n_y, n_x) tokens per level, (t, y, x) points per token,
N = L * n_t * n_y * n_x tokens, M tokens to predict per sample, E ensemble members, P = t * y * x):
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

ALPHA_SIZE = 7  # year, day of year, hour, level, lat, lon, resolution (data.neighbourhood)


@dataclass(frozen=True)
class FieldInput:
    """One field's question to the model."""

    tokens: torch.Tensor  # (B, L, n_t, n_y, n_x, t, y, x) normalised, already distorted
    alpha: torch.Tensor  # (B, L, n_t, n_y, n_x, ALPHA_SIZE) conditioning of every token
    masked: torch.Tensor  # (B, N) bool: tokens the model must not see (replaced by a mask token)
    target_index: torch.Tensor  # (B, M) int64: flat indices into N of the tokens to predict

    def __post_init__(self) -> None:
        b, n = self.tokens.shape[0], self.tokens.shape[1:5].numel()
        if self.tokens.dim() != 8:
            raise ValueError(
                f"tokens must be (B, L, n_t, n_y, n_x, t, y, x), got {tuple(self.tokens.shape)}"
            )
        if tuple(self.alpha.shape) != (*self.tokens.shape[:5], ALPHA_SIZE):
            raise ValueError(
                f"alpha {tuple(self.alpha.shape)} does not match tokens {tuple(self.tokens.shape)}"
            )
        if tuple(self.masked.shape) != (b, n) or self.masked.dtype != torch.bool:
            raise ValueError(
                f"masked must be bool (B, N) = ({b}, {n}), got {tuple(self.masked.shape)}"
            )
        if self.target_index.dim() != 2 or self.target_index.shape[0] != b:
            raise ValueError(f"target_index must be (B, M), got {tuple(self.target_index.shape)}")

    @property
    def token_points(self) -> int:
        """P: grid points per token."""
        return int(self.tokens.shape[5:].numel())


@dataclass(frozen=True)
class FieldOutput:
    """One field's answer: an ensemble for every token asked for."""

    ensemble: torch.Tensor  # (B, M, E, P) normalised values of the predicted tokens

    @property
    def mean(self) -> torch.Tensor:  # (B, M, P)
        return self.ensemble.mean(dim=2)

    @property
    def std(self) -> torch.Tensor:  # (B, M, P), unbiased over members
        return self.ensemble.std(dim=2)


ModelInput = Mapping[str, FieldInput]
ModelOutput = Mapping[str, FieldOutput]
