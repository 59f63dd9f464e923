"""A field's token embedding: the token's values, its alpha, and a learned mask token.

There is no positional table: where and when a token lies is in its alpha (time, level, lat,
lon), so one model runs on neighbourhoods of any size and a counterfactual changes alpha alone.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from atmorep_core.model.io import ALPHA_SIZE

# Periodic alpha entries (index in ALPHA_KEYS, period): encoded by sin/cos of harmonics, so that
# 31 December sits next to 1 January and 359.75 deg next to 0 deg.
_PERIODIC = ((1, 365.25), (2, 24.0), (4, 360.0), (5, 360.0))  # day of year, hour, lat, lon
# Plain entries (index, offset, scale): scaled to about [-1, 1] over the range one expects.
# Year stays linear so a counterfactual year moves the embedding smoothly, also beyond the data.
_SCALED = ((0, 2000.0, 50.0), (3, 0.0, 137.0), (4, 0.0, 90.0))  # year, model level, lat
_RESOLUTION = 6
_BASE_RESOLUTION = 0.25  # degrees: ERA5's grid, encoded as 0


def alpha_feature_count(frequencies: int) -> int:
    """Width of `alpha_features`: sin and cos per harmonic per periodic entry, one per other."""
    return 2 * frequencies * len(_PERIODIC) + len(_SCALED) + 1


def alpha_features(alpha: torch.Tensor, frequencies: int) -> torch.Tensor:
    """(..., 7) alpha in ALPHA_KEYS order -> (..., alpha_feature_count) features of order 1.

    Harmonics 1, 2, 4, ... resolve down to period / 2**(frequencies - 1): with 6, about 11 deg
    in lon, so the tokens of one neighbourhood (2.25 deg apart) are told apart.
    """
    harmonics = 2.0 ** torch.arange(frequencies, device=alpha.device, dtype=alpha.dtype)
    columns = []
    for index, period in _PERIODIC:
        angle = alpha[..., index, None] * (2 * math.pi / period) * harmonics  # (..., K)
        columns += [torch.sin(angle), torch.cos(angle)]
    for index, offset, scale in _SCALED:
        columns.append((alpha[..., index, None] - offset) / scale)  # (..., 1)
    resolution = alpha[..., _RESOLUTION, None].clamp_min(1e-6)
    columns.append(torch.log2(resolution / _BASE_RESOLUTION))  # (..., 1), 0 at 0.25 deg
    return torch.cat(columns, dim=-1)


class AlphaEmbedding(nn.Module):
    """alpha -> width: fixed features, then a small MLP that learns what they mean."""

    def __init__(self, width: int, frequencies: int) -> None:
        super().__init__()
        self.frequencies = frequencies
        self.mlp = nn.Sequential(
            nn.Linear(alpha_feature_count(frequencies), width), nn.GELU(), nn.Linear(width, width)
        )

    def forward(self, alpha: torch.Tensor) -> torch.Tensor:
        return self.mlp(alpha_features(alpha, self.frequencies))  # (..., D)


class FieldEmbedding(nn.Module):
    """(B, N, P) token values, (B, N, 7) alpha and (B, N) mask -> (B, N, D) embeddings."""

    def __init__(self, points: int, width: int, frequencies: int) -> None:
        super().__init__()
        self.values = nn.Linear(points, width)
        self.alpha = AlphaEmbedding(width, frequencies)
        self.mask_token = nn.Parameter(torch.randn(width) * 0.02)

    def forward(
        self, tokens: torch.Tensor, alpha: torch.Tensor, masked: torch.Tensor
    ) -> torch.Tensor:
        assert alpha.shape[-1] == ALPHA_SIZE
        hidden = masked[..., None]  # (B, N, 1)
        # Zero what is hidden before the linear map, so that not even a NaN there reaches the
        # output or the weight gradients.
        values = self.values(tokens.masked_fill(hidden, 0.0))  # (B, N, D)
        values = torch.where(hidden, self.mask_token.to(values.dtype), values)  # (B, N, D)
        return values + self.alpha(alpha)  # (B, N, D)
