import pytest
import torch

from atmorep_core.model.tokens import detokenize, token_grid_shape, tokenize


@pytest.mark.parametrize(
    ("lead", "token_size", "counts"),
    [
        ((), (3, 9, 9), (2, 2, 3)),
        ((2,), (3, 27, 27), (1, 2, 1)),
        ((2, 3), (1, 1, 1), (4, 3, 5)),
        ((1,), (6, 2, 5), (2, 3, 2)),
    ],
)
def test_detokenize_inverts_tokenize(
    lead: tuple[int, ...], token_size: tuple[int, int, int], counts: tuple[int, int, int]
) -> None:
    generator = torch.Generator().manual_seed(sum(token_size))
    extent = [c * s for c, s in zip(counts, token_size, strict=True)]
    points = torch.randn(*lead, 2, *extent, generator=generator)
    tokens = tokenize(points, token_size)
    assert tokens.shape == (*lead, 2, *counts, *token_size)
    assert torch.equal(detokenize(tokens), points)


def test_token_holds_its_box_of_points() -> None:
    # Values encode their own (level, time, lat, lon) index, so any mix-up shows.
    level, time, lat, lon = 2, 6, 8, 12
    points = torch.arange(level * time * lat * lon, dtype=torch.float64)
    points = points.reshape(level, time, lat, lon)
    tokens = tokenize(points, (3, 4, 6))
    assert tokens.shape == (2, 2, 2, 2, 3, 4, 6)
    for lv, i, j, k in [(0, 0, 0, 0), (1, 1, 0, 1), (1, 0, 1, 1)]:
        box = points[lv, 3 * i : 3 * i + 3, 4 * j : 4 * j + 4, 6 * k : 6 * k + 6]
        assert torch.equal(tokens[lv, i, j, k], box)


def test_tokens_that_do_not_split_are_refused() -> None:
    with pytest.raises(ValueError, match="lat: 10 points do not split into tokens of 3"):
        tokenize(torch.zeros(1, 6, 10, 12), (3, 3, 4))
    with pytest.raises(ValueError, match="level, time, lat, lon"):
        tokenize(torch.zeros(6, 10, 12), (3, 5, 4))
    assert token_grid_shape((36, 54, 108), (3, 27, 27)) == (12, 2, 4)
