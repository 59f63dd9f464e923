"""Normalise and de-normalise a field over a domain exactly as the model saw it in training.

The sampler normalises every time step with the statistics of its own month: per level
("global", saved in the checkpoint) or per grid point and month ("local", read from the store
the model was trained on). A product may be asked for a month that store never held (a forecast
of the future, a correction of another year): it then takes the same calendar month of the
nearest year the store has, and failing that the nearest month, so that the seasonal cycle of
the statistics is kept wherever the store allows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from atmorep_core.data.neighbourhood import months_of
from atmorep_core.data.normalize import MIN_STD
from atmorep_core.errors import StoreError
from atmorep_core.io.store import Store


class FieldStatistics:
    """Mean and std of one field's levels on the domain, for any time step."""

    def __init__(
        self,
        name: str,
        levels: tuple[int, ...],
        saved: dict[str, Any],
        store: Store | None,
        rows: slice,
        columns: np.ndarray,
    ) -> None:
        """`saved`: the checkpoint's normalisation of the field; `store`: where local statistics
        lie (the training store); rows and columns: the domain in grid indices."""
        self.name, self.kind = name, saved["kind"]
        known = [int(v) for v in saved["levels"]]
        missing = [lv for lv in levels if lv not in known]
        if missing:
            raise StoreError(f"{name}: the checkpoint has no statistics for levels {missing}")
        self.level_index = np.array([known.index(lv) for lv in levels])
        self.rows, self.columns, self.store = rows, columns, store
        self._local: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        mean = np.asarray(saved["global_mean"], dtype=np.float64)[self.level_index]
        std = np.maximum(
            np.asarray(saved["global_std"], dtype=np.float64)[self.level_index], MIN_STD
        )
        self._global = (
            mean.astype(np.float32).reshape(-1, 1, 1, 1),
            std.astype(np.float32).reshape(-1, 1, 1, 1),
        )
        if self.kind == "local" and store is None:
            raise StoreError(f"{name}: local normalisation needs the store it was trained on")

    def mean_std(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std broadcastable to (level, time, lat, lon) values at `times`."""
        if self.kind == "global":
            return self._global
        months = months_of(times)
        pairs = [self._month(int(m)) for m in months]
        if len(set(months.tolist())) == 1:
            mean, std = pairs[0]
            return mean[:, None], std[:, None]  # (level, 1, lat, lon)
        return np.stack([p[0] for p in pairs], 1), np.stack([p[1] for p in pairs], 1)

    def normalise(self, values: np.ndarray, times: np.ndarray) -> np.ndarray:
        mean, std = self.mean_std(times)
        return ((values - mean) / std).astype(np.float32)

    def denormalise(self, values: np.ndarray, times: np.ndarray) -> np.ndarray:
        mean, std = self.mean_std(times)
        return (values * std + mean).astype(np.float32)

    def _month(self, yyyymm: int) -> tuple[np.ndarray, np.ndarray]:
        if yyyymm not in self._local:
            assert self.store is not None
            arrays = self.store.field(self.name)
            if self.name not in self.store.fields or len(arrays.months) == 0:
                raise StoreError(f"{self.name}: the statistics store has no monthly statistics")
            mean, std = arrays.local_norm(nearest_month(arrays.months, yyyymm))
            mean, std = (a[self.level_index, self.rows][..., self.columns] for a in (mean, std))
            self._local[yyyymm] = (
                mean.astype(np.float32),
                np.maximum(std, MIN_STD).astype(np.float32),
            )
        return self._local[yyyymm]


def nearest_month(available: np.ndarray, yyyymm: int) -> int:
    """`yyyymm` if available, else the same calendar month of the nearest year, else the nearest."""
    months = [int(m) for m in available]
    if yyyymm in months:
        return yyyymm
    same = [m for m in months if m % 100 == yyyymm % 100]
    wanted = _month_number(yyyymm)
    return min(same or months, key=lambda m: (abs(_month_number(m) - wanted), m))


def _month_number(yyyymm: int) -> int:
    return (yyyymm // 100) * 12 + yyyymm % 100
