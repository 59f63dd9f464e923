"""Tokens of one field: a neighbourhood of grid points cut into space-time boxes, and back.

A neighbourhood of one field is (level, time, lat, lon) points; with token size (t, y, x) it is
cut into n_t x n_lat x n_lon tokens per level, each holding t x y x x points:

    points (..., level, n_t * t, n_lat * y, n_lon * x)
    tokens (..., level, n_t, n_lat, n_lon, t, y, x)

Any leading dimensions (a batch) are carried along. Both directions are pure reshapes and
permutes, so `detokenize(tokenize(x, size))` returns `x` exactly.
"""

from __future__ import annotations

import torch

TokenSize = tuple[int, int, int]  # points per token in (time, lat, lon)


def tokenize(points: torch.Tensor, token_size: TokenSize) -> torch.Tensor:
    """Cut (..., level, time, lat, lon) points into (..., level, n_t, n_lat, n_lon, t, y, x)."""
    if points.dim() < 4:
        raise ValueError(f"points must be (..., level, time, lat, lon), got {tuple(points.shape)}")
    *lead, level, time, lat, lon = points.shape
    t, y, x = token_size
    n_t, n_lat, n_lon = token_grid_shape((time, lat, lon), token_size)
    split = points.reshape(*lead, level, n_t, t, n_lat, y, n_lon, x)
    # Move the three token-count axes in front of the three within-token axes.
    b = len(lead)
    order = [*range(b), b, b + 1, b + 3, b + 5, b + 2, b + 4, b + 6]
    return split.permute(order).contiguous()  # (..., level, n_t, n_lat, n_lon, t, y, x)


def detokenize(tokens: torch.Tensor) -> torch.Tensor:
    """Join (..., level, n_t, n_lat, n_lon, t, y, x) tokens into (..., level, time, lat, lon)."""
    if tokens.dim() < 7:
        raise ValueError(
            f"tokens must be (..., level, n_t, n_lat, n_lon, t, y, x), got {tuple(tokens.shape)}"
        )
    *lead, level, n_t, n_lat, n_lon, t, y, x = tokens.shape
    b = len(lead)
    order = [*range(b), b, b + 1, b + 4, b + 2, b + 5, b + 3, b + 6]
    interleaved = tokens.permute(order)  # (..., level, n_t, t, n_lat, y, n_lon, x)
    return interleaved.reshape(*lead, level, n_t * t, n_lat * y, n_lon * x)


def token_grid_shape(extent: TokenSize, token_size: TokenSize) -> TokenSize:
    """Token counts (n_t, n_lat, n_lon) of an extent in points; ValueError if it does not split."""
    counts = []
    for axis, points, size in zip(("time", "lat", "lon"), extent, token_size, strict=True):
        if size < 1 or points % size:
            raise ValueError(f"{axis}: {points} points do not split into tokens of {size}")
        counts.append(points // size)
    return counts[0], counts[1], counts[2]
