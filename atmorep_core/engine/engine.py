"""Ask a model one question over a whole domain: cut it into tiles, predict, stitch the answers.

The question is a masking strategy that hides whole time slices of tokens (forecast: the last
ones; temporal interpolation: some in between; identity: none hidden, all predicted), applied to
every tile exactly as in training (`questions.masking.apply_plan`). The model answers with an
ensemble per target token; a *selector* turns it into one value per point: the mean over the
tail's heads (None) or one head, so that each member of a product follows one head.

Shapes: values (level, time, R, C) normalised over the domain of R x C points, time = the
neighbourhood's time extent; the answer per selector and field is (level, target steps, R, C).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from atmorep_core.data.neighbourhood import token_alpha
from atmorep_core.engine.alpha import AlphaChange
from atmorep_core.engine.tiling import Stitcher, Tiling
from atmorep_core.errors import ConfigError
from atmorep_core.model.config import FieldModelConfig
from atmorep_core.model.io import FieldInput, FieldOutput
from atmorep_core.model.tokens import detokenize, tokenize
from atmorep_core.questions.masking import apply_plan
from atmorep_core.questions.strategies import MaskingStrategy, TokenGrid, TokenPlan

Predictor = Callable[[Mapping[str, FieldInput]], Mapping[str, FieldOutput]]
Selector = int | None  # an ensemble head, or None for the mean over heads
Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class DomainField:
    """One field's values over the domain, with the model's token layout of the field."""

    config: FieldModelConfig
    values: np.ndarray  # (level, time, R, C) normalised; hidden time slices may hold anything


def target_slices(strategy: MaskingStrategy, config: FieldModelConfig) -> list[int]:
    """The time-token slices a strategy predicts; ConfigError unless it predicts whole slices."""
    plan = _plan(strategy, config, 1)
    n_t, n_y, n_x = config.token_count
    index = plan.target_index[0]
    slices = sorted({int(i) for i in (index // (n_y * n_x)) % n_t})
    if len(index) != len(config.levels) * len(slices) * n_y * n_x:
        raise ConfigError(f"{config.name}: a product needs a strategy that predicts time slices")
    return slices


def ask(
    predictor: Predictor,
    fields: Mapping[str, DomainField],
    times: np.ndarray,
    tiling: Tiling,
    strategy: MaskingStrategy,
    selectors: Sequence[Selector],
    batch_size: int,
    progress: Progress | None = None,
    alpha: AlphaChange | None = None,
) -> list[dict[str, np.ndarray]]:
    """Stitched answers over the domain, one mapping per selector: field -> (L, k*t, R, C).

    `alpha` changes the tokens' conditioning before the model sees it (counterfactuals)."""
    device = _device_of(predictor)
    stitchers = [
        {name: Stitcher(tiling, _answer_leading(f, strategy)) for name, f in fields.items()}
        for _ in selectors
    ]
    positions = tiling.positions
    for first in range(0, len(positions), batch_size):
        chosen = positions[first : first + batch_size]
        inputs = {
            name: _field_input(f, chosen, times, tiling, strategy, device, alpha)
            for name, f in fields.items()
        }
        with torch.inference_mode():
            outputs = predictor(inputs)
        for name, f in fields.items():
            answers = _answers(outputs[name], f.config, strategy, selectors)
            for stitch, answer in zip(stitchers, answers, strict=True):
                for tile, (lat, lon) in zip(answer, chosen, strict=True):
                    stitch[name].add(tile, lat, lon)
        if progress is not None:
            done = first + len(chosen)
            progress(f"tile {done}/{len(positions)}", done / len(positions))
    return [{name: s.result() for name, s in stitch.items()} for stitch in stitchers]


def _field_input(
    field: DomainField,
    positions: Sequence[tuple[int, int]],
    times: np.ndarray,
    tiling: Tiling,
    strategy: MaskingStrategy,
    device: torch.device,
    alpha: AlphaChange | None,
) -> FieldInput:
    """The model's question for a batch of tiles, distorted as the strategy does in training."""
    config, grid = field.config, tiling.grid
    points, alphas = [], []
    for lat, lon in positions:
        rows, columns = tiling.tile_rows(lat), tiling.tile_columns(lon)
        points.append(field.values[:, :, rows][..., columns])  # (L, T, h, w)
        lats, lons = grid.window_axes(lat, lon, tiling.tile)
        alphas.append(
            token_alpha(
                times, config.levels, lats, lons, config.token_size, grid.resolution_deg,
                tiling.wraps, south_pole=grid.south_pole,
            )
        )  # fmt: skip
    tokens = tokenize(torch.from_numpy(np.stack(points)), config.token_size).to(device)
    conditioning = torch.stack(alphas).to(device)  # (B, L, n_t, n_y, n_x, 7)
    if alpha:
        conditioning = alpha.apply(conditioning)
    plan = _plan(strategy, config, len(positions))
    question, _ = apply_plan(tokens, conditioning, plan, _generator(device))
    return question


def _answers(
    output: FieldOutput,
    config: FieldModelConfig,
    strategy: MaskingStrategy,
    selectors: Sequence[Selector],
) -> list[np.ndarray]:
    """Per selector the (B, L, k*t, h, w) predicted points of the target slices."""
    b, _, heads, _ = output.ensemble.shape
    _, n_y, n_x = config.token_count
    k = len(target_slices(strategy, config))
    ensemble = output.ensemble.float().reshape(
        b, len(config.levels), k, n_y, n_x, heads, *config.token_size
    )  # (B, L, k, n_y, n_x, E, t, y, x)
    picked = [
        ensemble.mean(dim=5) if s is None else ensemble[:, :, :, :, :, s % heads] for s in selectors
    ]
    return [detokenize(p).cpu().numpy() for p in picked]  # each (B, L, k*t, h, w)


def _answer_leading(field: DomainField, strategy: MaskingStrategy) -> tuple[int, int]:
    k = len(target_slices(strategy, field.config))
    return len(field.config.levels), k * field.config.token_size[0]


def _plan(strategy: MaskingStrategy, config: FieldModelConfig, batch: int) -> TokenPlan:
    grid = TokenGrid(len(config.levels), config.token_count, config.token_size)
    return strategy.plan(grid, batch, torch.Generator().manual_seed(0))


def _generator(device: torch.device) -> torch.Generator:
    # Only noise distortions draw from it; products hide or keep tokens, so it never changes them.
    return torch.Generator(device=device).manual_seed(0)


def _device_of(predictor: Predictor) -> torch.device:
    if isinstance(predictor, torch.nn.Module):
        for parameter in predictor.parameters():
            return parameter.device
    return torch.device("cpu")
