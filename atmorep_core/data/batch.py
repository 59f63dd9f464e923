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

    def __post_init__(self) -> None:
        _check_named_tensors(self.tokens, self.alpha, self.meta.fields, lead=0)


@dataclass(frozen=True)
class Batch:
    """Samples stacked along a leading batch dimension."""

    tokens: Mapping[str, torch.Tensor]  # field -> (batch, level, n_t, n_lat, n_lon, t, y, x)
    alpha: Mapping[str, torch.Tensor]  # field -> (batch, level, n_t, n_lat, n_lon, 7)
    metas: tuple[SampleMeta, ...]

    def __post_init__(self) -> None:
        _check_named_tensors(self.tokens, self.alpha, self.metas[0].fields, lead=1)

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            {k: v.to(device) for k, v in self.tokens.items()},
            {k: v.to(device) for k, v in self.alpha.items()},
            self.metas,
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


def collate(samples: Sequence[Sample]) -> Batch:
    """Stack samples of the same fields into a batch (a DataLoader's collate_fn)."""
    fields = samples[0].meta.fields
    return Batch(
        {name: torch.stack([s.tokens[name] for s in samples]) for name in fields},
        {name: torch.stack([s.alpha[name] for s in samples]) for name in fields},
        tuple(s.meta for s in samples),
    )
