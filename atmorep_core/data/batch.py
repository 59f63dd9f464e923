"""What the sampler hands out: named token tensors with their alpha and where they came from.

As in aurora's Batch: named tensors plus metadata, checked on construction, with pure methods
returning a new object.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from atmorep_core.data.neighbourhood import ALPHA_KEYS


@dataclass(frozen=True)
class SampleMeta:
    """Where a sample lies: indices into the sampler's time axis and the store's grid."""

    time_start: np.datetime64  # first time step of the window
    time_index: int  # index of time_start in NeighbourhoodSampler.times
    lat_start: int  # first grid row (the window never crosses a pole)
    lon_start: int  # first grid column, in [0, nlon); the window may wrap past nlon
    fields: tuple[str, ...]
    levels: tuple[tuple[int, ...], ...]  # per field
    index: int | None = None  # position in the dataset's sequence, None for a given read


@dataclass(frozen=True)
class Sample:
    """Normalised tokens and their alpha for each field of one neighbourhood."""

    tokens: Mapping[str, torch.Tensor]  # field -> (level, n_t, n_lat, n_lon, t, y, x) float32
    alpha: Mapping[str, torch.Tensor]  # field -> (level, n_t, n_lat, n_lon, 7) float32
    meta: SampleMeta
    # Paired training: what the model is to answer instead of `tokens` (e.g. observations where
    # tokens hold model output), normalised as the tokens; None: the tokens themselves.
    targets: Mapping[str, torch.Tensor] | None = None

    def __post_init__(self) -> None:
        _check_named_tensors(self.tokens, self.alpha, self.meta.fields, lead=0)
        _check_targets(self.targets, self.tokens)


@dataclass(frozen=True)
class Batch:
    """Samples stacked along a leading batch dimension."""

    tokens: Mapping[str, torch.Tensor]  # field -> (batch, level, n_t, n_lat, n_lon, t, y, x)
    alpha: Mapping[str, torch.Tensor]  # field -> (batch, level, n_t, n_lat, n_lon, 7)
    metas: tuple[SampleMeta, ...]
    targets: Mapping[str, torch.Tensor] | None = None  # as Sample.targets, stacked

    def __post_init__(self) -> None:
        _check_named_tensors(self.tokens, self.alpha, self.metas[0].fields, lead=1)
        _check_targets(self.targets, self.tokens)

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            {k: v.to(device) for k, v in self.tokens.items()},
            {k: v.to(device) for k, v in self.alpha.items()},
            self.metas,
            None if self.targets is None else {k: v.to(device) for k, v in self.targets.items()},
        )


def _check_named_tensors(
    tokens: Mapping[str, torch.Tensor],
    alpha: Mapping[str, torch.Tensor],
    fields: tuple[str, ...],
    lead: int,
) -> None:
    if tuple(tokens) != fields or tuple(alpha) != fields:
        raise ValueError(f"tokens {list(tokens)} and alpha {list(alpha)} must follow {fields}")
    for name in fields:
        grid, a = tokens[name].shape[: lead + 4], alpha[name].shape
        if tokens[name].dim() != lead + 7 or a != (*grid, len(ALPHA_KEYS)):
            raise ValueError(f"{name}: tokens {tuple(tokens[name].shape)} vs alpha {tuple(a)}")


def _check_targets(
    targets: Mapping[str, torch.Tensor] | None, tokens: Mapping[str, torch.Tensor]
) -> None:
    if targets is None:
        return
    if tuple(targets) != tuple(tokens):
        raise ValueError(f"targets {list(targets)} must follow the tokens' fields {list(tokens)}")
    for name, values in targets.items():
        if values.shape != tokens[name].shape:
            raise ValueError(
                f"{name}: targets {tuple(values.shape)} vs tokens {tuple(tokens[name].shape)}"
            )


def collate(samples: Sequence[Sample]) -> Batch:
    """Stack samples of the same fields into a batch (a DataLoader's collate_fn)."""
    fields = samples[0].meta.fields
    paired = samples[0].targets is not None
    return Batch(
        {name: torch.stack([s.tokens[name] for s in samples]) for name in fields},
        {name: torch.stack([s.alpha[name] for s in samples]) for name in fields},
        tuple(s.meta for s in samples),
        {name: torch.stack([s.targets[name] for s in samples if s.targets]) for name in fields}
        if paired
        else None,
    )
