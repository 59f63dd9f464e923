"""The ensemble tail: E heads, each a linear map of a token's latent to its P grid points.

The members differ only by their heads, so one forward pass gives the whole ensemble; the
statistical and CRPS losses make the spread mean something.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class EnsembleTail(nn.Module):
    """(B, M, D) latents of the tokens asked for -> (B, M, E, P) ensemble of their values.

    `per_member_norm`: each member has its own layer norm (the original AtmoRep's tail) instead
    of one shared by all.
    """

    def __init__(
        self, width: int, points: int, members: int, per_member_norm: bool = False
    ) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=not per_member_norm)
        bound = 1 / math.sqrt(width)  # nn.Linear's default, drawn independently per member
        self.weight = nn.Parameter(torch.empty(members, width, points).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(members, points).uniform_(-bound, bound))
        if per_member_norm:
            self.norm_weight = nn.Parameter(torch.ones(members, width))
            self.norm_bias = nn.Parameter(torch.zeros(members, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = self.norm(x)  # (B, M, D)
        if hasattr(self, "norm_weight"):  # each member scales and shifts the norm its own way
            members = normed[:, :, None] * self.norm_weight + self.norm_bias  # (B, M, E, D)
            return torch.einsum("bmed,edp->bmep", members, self.weight) + self.bias
        # All heads at once: one batched matmul instead of E small ones.
        return torch.einsum("bmd,edp->bmep", normed, self.weight) + self.bias  # (B,M,E,P)
