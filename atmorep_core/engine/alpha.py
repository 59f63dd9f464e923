"""Change the conditioning alpha a product is asked with: the counterfactual's lever.

Every token carries alpha = (year, day of year, hour, level, lat, lon, resolution); a
counterfactual asks the same question with some entries set to a value (`year=2050`) or moved
(`year+35`), e.g. the same weather situation in another climate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from atmorep_core.data.neighbourhood import ALPHA_KEYS
from atmorep_core.errors import ConfigError


@dataclass(frozen=True)
class AlphaChange:
    """Entries of alpha to set, and entries to shift, by name (ALPHA_KEYS)."""

    set: Mapping[str, float] = field(default_factory=dict)
    shift: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in (*self.set, *self.shift):
            if key not in ALPHA_KEYS:
                raise ConfigError(f"alpha: no entry {key!r} (entries: {', '.join(ALPHA_KEYS)})")

    def __bool__(self) -> bool:
        return bool(self.set or self.shift)

    def apply(self, alpha: torch.Tensor) -> torch.Tensor:
        """(..., 7) alpha with the change made; the input is not modified."""
        changed = alpha.clone()
        for key, value in self.set.items():
            changed[..., ALPHA_KEYS.index(key)] = value
        for key, value in self.shift.items():
            changed[..., ALPHA_KEYS.index(key)] += value
        return changed
