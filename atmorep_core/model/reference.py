"""The first guess a field may predict its departure from (`FieldModelConfig.residual: time`).

At every grid point and hour of a neighbourhood, the values the model was shown, interpolated
linearly in time between the nearest shown hours before and after; before the first or after
the last shown hour, the nearest shown value (so a forecast's first guess is persistence, an
interpolation's is linear in time, a token shown as it is is its own first guess); zero (the
normalised mean) where a point was never shown. Only tokens not masked are read, so nothing the
model must predict leaks into it. The tail then adds the learned departure: the network spends
its capacity on what the first guess gets wrong, not on copying a field it was given.
"""

from __future__ import annotations

import torch

from atmorep_core.model.io import FieldInput


def time_reference(field: FieldInput) -> torch.Tensor:
    """(B, N, P) first guess of every token, laid out as the tokens are."""
    b, levels, n_t, n_y, n_x, t, y, x = field.tokens.shape
    hours = n_t * t
    # Put time last and whole: (B, L, n_y, n_x, y, x, T).
    series = field.tokens.permute(0, 1, 3, 4, 6, 7, 2, 5).reshape(b, levels, n_y, n_x, y, x, hours)
    shown = ~field.masked.reshape(b, levels, n_t, n_y, n_x).permute(0, 1, 3, 4, 2)
    shown = shown.repeat_interleave(t, dim=-1)[:, :, :, :, None, None, :].expand_as(series)
    index = torch.arange(hours, device=series.device).expand_as(series)
    before = torch.where(shown, index, -1).cummax(dim=-1).values  # last shown hour, or -1
    after_flipped = torch.where(shown.flip(-1), index, -1).cummax(dim=-1).values.flip(-1)
    after = hours - 1 - after_flipped  # next shown hour, or T
    has_before, has_after = before >= 0, after < hours
    value_before = series.gather(-1, before.clamp(min=0))
    value_after = series.gather(-1, after.clamp(max=hours - 1))
    weight = (index - before) / (after - before).clamp(min=1)
    between = value_before + weight * (value_after - value_before)
    guess = torch.where(
        has_before & has_after,
        between,
        torch.where(has_before, value_before, torch.where(has_after, value_after, 0.0)),
    )
    # Back to tokens: (B, L, n_y, n_x, y, x, n_t, t) -> (B, L, n_t, n_y, n_x, t, y, x) -> (B, N, P).
    guess = guess.reshape(b, levels, n_y, n_x, y, x, n_t, t).permute(0, 1, 6, 2, 3, 7, 4, 5)
    return guess.reshape(b, levels * n_t * n_y * n_x, t * y * x)
