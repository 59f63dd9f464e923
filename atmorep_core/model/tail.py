"""The ensemble tail: E heads, each a linear map of a token's latent to its P grid points.

The members differ only by their heads, so one forward pass gives the whole ensemble; the
statistical and CRPS losses make the spread mean something.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class EnsembleTail(nn.Module):
    """(B, M, D) latents of the tokens asked for -> (B, M, E, P) ensemble of their values."""

    def __init__(self, width: int, points: int, members: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        bound = 1 / math.sqrt(width)  # nn.Linear's default, drawn independently per member
        self.weight = nn.Parameter(torch.empty(members, width, points).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(members, points).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # All heads at once: one batched matmul instead of E small ones.
        return torch.einsum("bmd,edp->bmep", self.norm(x), self.weight) + self.bias  # (B,M,E,P)
