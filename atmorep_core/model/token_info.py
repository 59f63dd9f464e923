"""The published AtmoRep's token embedding (`token_embedding: token_info`).

A token's values go through a linear map to D - W channels, its raw token infos (8 numbers:
year, day of year from 0, hour, level, colatitude, longitude, level, resolution) through another
to W channels; the two are concatenated and a fixed harmonic positional encoding of the token's
index is added. Hidden tokens are zeroed before the map (no learned mask token).

The token infos are derived from this project's alpha, which describes a token by its centre in
time and space: the original dates a token by its last hour and places it at grid point
size // 2 inside it, so an even token size moves the position by half a grid step (latitudes
stored north to south, as ERA5's; longitudes west to east).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from atmorep_core.model.io import ALPHA_SIZE

TOKEN_INFO_SIZE = 8
_HOURS_PER_DAY = 24.0


def token_infos(alpha: torch.Tensor, token_size: tuple[int, int, int]) -> torch.Tensor:
    """(..., 7) alpha (hourly data) -> (..., 8) token infos as the original feeds them."""
    year, day, hour, level, lat, lon, resolution = alpha.unbind(-1)
    t, y, x = token_size
    hours = (day - 1) * _HOURS_PER_DAY + hour + (t - 1) / 2  # from the centre to the last hour
    day0 = torch.floor(hours / _HOURS_PER_DAY)
    hour_last = hours - day0 * _HOURS_PER_DAY
    days_in_year = 365.0 + _is_leap(year)
    next_year = day0 >= days_in_year
    year = torch.where(next_year, year + 1, year)
    day0 = torch.where(next_year, day0 - days_in_year, day0)
    colat = 90.0 - lat + (resolution / 2 if y % 2 == 0 else 0.0)
    lon = lon + (resolution / 2 if x % 2 == 0 else 0.0)
    columns = (year, day0, hour_last, level, colat, lon, level, resolution)
    return torch.stack(columns, dim=-1)


def _is_leap(year: torch.Tensor) -> torch.Tensor:
    by4, by100, by400 = (torch.remainder(year, n) == 0 for n in (4, 100, 400))
    return ((by4 & ~by100) | by400).to(year.dtype)


def harmonic_positions(counts: tuple[int, int, int, int], width: int) -> torch.Tensor:
    """(L * n_t * n_y * n_x, width) fixed encoding of token indices, as the original's.

    The original derives the latitude index as r // n_y (not r // n_x) of the index r within a
    time slice; kept, since the published weights were trained with it.
    """
    levels, n_t, n_y, n_x = counts
    index = torch.arange(levels * n_t * n_y * n_x)
    level, within = index // (n_t * n_y * n_x), index % (n_t * n_y * n_x)
    time, r = within // (n_y * n_x), index % (n_y * n_x)
    lat, lon = r // n_y, r % n_x
    frequency = 2.0 * math.pi * torch.arange(0, width, 2, dtype=torch.float32) / width
    encoding = torch.zeros(index.shape[0], width)
    even = 0.5 * torch.sin(torch.outer(8 * lat, frequency)) + torch.sin(
        torch.outer(time, frequency)
    )
    odd = 0.5 * torch.cos(torch.outer(8 * lon, frequency)) + torch.cos(
        torch.outer(level, frequency)
    )
    encoding[:, 0::2], encoding[:, 1::2] = even, odd
    return encoding


class TokenInfoEmbedding(nn.Module):
    """(B, N, P) values, (B, N, 7) alpha, (B, N) mask -> (B, N, D), the original's embedding."""

    def __init__(
        self, points: int, width: int, info_width: int, token_size: tuple[int, int, int]
    ) -> None:
        super().__init__()
        self.token_size = token_size
        self.values = nn.Linear(points, width - info_width)
        self.info = nn.Linear(TOKEN_INFO_SIZE, info_width)

    def forward(
        self,
        tokens: torch.Tensor,
        alpha: torch.Tensor,
        masked: torch.Tensor,
        counts: tuple[int, int, int, int],
    ) -> torch.Tensor:
        assert alpha.shape[-1] == ALPHA_SIZE
        values = self.values(tokens.masked_fill(masked[..., None], 0.0))  # (B, N, D - W)
        infos = self.info(token_infos(alpha, self.token_size))  # (B, N, W)
        embedded = torch.cat([values, infos], dim=-1)  # (B, N, D)
        positions = harmonic_positions(counts, embedded.shape[-1]).to(embedded)
        return embedded + positions  # (B, N, D)
