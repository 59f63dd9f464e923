"""The first guess of `residual: time` against values worked out by hand, and a model whose
tail says nothing returning exactly that first guess."""

from __future__ import annotations

import torch

from atmorep_core.model.config import model_config_from_dict
from atmorep_core.model.io import FieldInput
from atmorep_core.model.multiformer import Multiformer
from atmorep_core.model.reference import time_reference

# One level, 4 time tokens of 3 h, 1 x 1 spatial tokens of 1 x 2 points: 12 hours at 2 points.
SHAPE = (1, 1, 4, 1, 1, 3, 1, 2)


def field_with(series: torch.Tensor, masked_tokens: list[int]) -> FieldInput:
    """series (12 hours, 2 points) -> a field of tokens with the given time tokens masked."""
    tokens = series.reshape(4, 3, 2).reshape(SHAPE)
    masked = torch.zeros(1, 4, dtype=torch.bool)
    masked[0, masked_tokens] = True
    tokens = tokens.clone()
    tokens[0, 0, masked_tokens] = float("nan")  # what the model must not see never enters
    alpha = torch.zeros(*SHAPE[:5], 7)
    return FieldInput(tokens, alpha, masked, torch.tensor([masked_tokens or [0]]))


def as_hours(guess: torch.Tensor) -> torch.Tensor:
    """(1, 4 tokens, 6 points) -> (12 hours, 2 points)."""
    return guess.reshape(4, 3, 2).reshape(12, 2)


HOURS = torch.arange(12.0)
SERIES = torch.stack([HOURS, 100 + HOURS**2], dim=1)  # linear at the first point, not the second


def test_hidden_hours_between_shown_ones_are_interpolated_linearly() -> None:
    guess = as_hours(time_reference(field_with(SERIES, [1, 2])))  # hours 3..8 hidden
    torch.testing.assert_close(guess[:, 0], HOURS)  # a linear series is its own first guess
    start, end = SERIES[2, 1], SERIES[9, 1]  # hidden hours lie between hours 2 and 9
    expected = start + (HOURS[3:9] - 2) / 7 * (end - start)
    torch.testing.assert_close(guess[3:9, 1], expected)
    torch.testing.assert_close(guess[[0, 1, 2, 9, 10, 11]], SERIES[[0, 1, 2, 9, 10, 11]])


def test_beyond_the_shown_hours_the_nearest_one_persists_and_nothing_shown_gives_zero() -> None:
    forecast = as_hours(time_reference(field_with(SERIES, [3])))  # the last 3 h hidden
    torch.testing.assert_close(forecast[9:], SERIES[8].expand(3, 2))
    backwards = as_hours(time_reference(field_with(SERIES, [0])))
    torch.testing.assert_close(backwards[:3], SERIES[3].expand(3, 2))
    nothing = time_reference(field_with(SERIES, [0, 1, 2, 3]))
    assert torch.equal(nothing, torch.zeros(1, 4, 6))


def test_a_model_whose_tail_says_nothing_returns_the_first_guess_for_every_member() -> None:
    config = model_config_from_dict(
        {"fields": [{"name": "t2m", "levels": [0], "token_count": [4, 1, 1],
                     "token_size": [3, 1, 2], "embed_dim": 16, "num_heads": 2,
                     "encoder_layers": 1, "decoder_layers": 1, "tail_heads": 3,
                     "residual": "time"}]}
    )  # fmt: skip
    model = Multiformer(config).eval()
    with torch.no_grad():
        model.field("t2m").tail.weight.zero_()
        model.field("t2m").tail.bias.zero_()
        field = field_with(SERIES, [3])
        ensemble = model({"t2m": field})["t2m"].ensemble  # (1, 1 target, 3 members, 6 points)
    assert ensemble.shape == (1, 1, 3, 6)
    for member in range(3):
        torch.testing.assert_close(ensemble[0, 0, member], SERIES[8].repeat(3))
