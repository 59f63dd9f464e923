"""The original AtmoRep's normalisation statistics, read from its data file (`--normalisation`).

The original trains from one zarr group (`datasets/multifield_data_sampler.py`) that holds,
beside the data:

    attrs fields, levels      the fields on model levels and the levels
    attrs fields_sfc          the surface fields (level 0 in a model's field entry)
    time                      its first year is the base year: statistics row
                              12 * (year - base) + month - 1 is that year and month
    lats, lons                90 - latitude of each row (0 at the North Pole), longitude
    normalization/norm        (row, 2, field, level, lat, lon): mean and standard deviation per
                              grid point ("local", a field entry's 7th element)
    normalization/global_norm (row, 2, field, level): per level ("global")
    normalization/norm_sfc, normalization/global_norm_sfc: the same without the level axis

`datasets/normalizer.py` divides by the second entry (named var there; it is a standard
deviation). Both kinds are per year and month; a row whose deviations are all zero was never
computed (the original refuses it) and is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from atmorep_core.errors import StoreError

Statistics = tuple[np.ndarray, np.ndarray]  # mean, std: (level, lat, lon)


@dataclass(frozen=True)
class OriginalNormalisation:
    """The statistics of an original data file; `month_rows` reads them one month at a time."""

    path: Path
    root: zarr.Group
    base_year: int

    @classmethod
    def open(cls, path: Path) -> OriginalNormalisation:
        """StoreError naming the file if it is not an original AtmoRep data file."""
        try:
            root = zarr.open_group(str(path), mode="r")
            first = np.asarray(_array(root, "time")[:1]).astype("datetime64[Y]")
            return cls(path, root, int(first[0].astype(int)) + 1970)
        except (FileNotFoundError, KeyError, IndexError, ValueError, TypeError) as error:
            raise StoreError(
                f"{path}: not an original AtmoRep data file with normalization/ "
                f"({type(error).__name__}: {error})"
            ) from None

    @property
    def latitudes(self) -> np.ndarray:
        """Geographic latitude of each row."""
        return 90.0 - np.asarray(_array(self.root, "lats")[:], dtype=np.float64)

    @property
    def longitudes(self) -> np.ndarray:
        return np.asarray(_array(self.root, "lons")[:], dtype=np.float64)

    def month_rows(
        self, name: str, levels: tuple[int, ...], kind: str
    ) -> Iterator[tuple[int, Statistics]]:
        """(YYYYMM, (mean, std)) of each computed month of a field's levels, on the file's
        grid: global statistics repeated at every point, so that both kinds read alike."""
        arrays = [self._level_array(name, level, kind) for level in levels]
        shape = (len(self.latitudes), len(self.longitudes))
        for row in range(arrays[0][0].shape[0]):
            pairs = [_month(array, row, at) for array, at in arrays]  # (2,) or (2, lat, lon)
            mean = np.stack([np.broadcast_to(p[0], shape) for p in pairs]).astype(np.float64)
            std = np.stack([np.broadcast_to(p[1], shape) for p in pairs]).astype(np.float64)
            if std.any():
                yield (self.base_year + row // 12) * 100 + row % 12 + 1, (mean, std)

    def _level_array(self, name: str, level: int, kind: str) -> tuple[zarr.Array, tuple[int, ...]]:
        """The statistics array of a field and level and the indices of both in it."""
        surface = level == 0
        fields = [str(f) for f in self._names("fields_sfc" if surface else "fields")]
        if name not in fields:
            raise StoreError(
                f"{self.path}: no {'surface ' if surface else ''}field {name!r} in the original's "
                f"normalisation (has {', '.join(fields) or 'none'})"
            )
        at: tuple[int, ...] = (fields.index(name),)
        if not surface:
            known = [int(v) for v in self._names("levels")]
            if level not in known:
                raise StoreError(f"{self.path}: {name} has no level {level} (has {known})")
            at += (known.index(level),)
        array = f"normalization/{'norm' if kind == 'local' else 'global_norm'}"
        try:
            return _array(self.root, array + ("_sfc" if surface else "")), at
        except KeyError:
            raise StoreError(f"{self.path}: no {array} array") from None

    def _names(self, key: str) -> list[Any]:
        """A list attribute (`fields`, `fields_sfc`, `levels`); empty if absent."""
        value = self.root.attrs.get(key, [])
        if not isinstance(value, list):
            raise StoreError(f"{self.path}: attribute {key} is {value!r}, not a list")
        return value


def _array(root: zarr.Group, key: str) -> zarr.Array:
    """The array at `key`; KeyError if there is none (or a group)."""
    node = root[key]
    if not isinstance(node, zarr.Array):
        raise KeyError(key)
    return node


def _month(array: zarr.Array, row: int, at: tuple[int, ...]) -> np.ndarray:
    """Mean and standard deviation of one month at the field (and level) indices `at`."""
    index: tuple[int | slice, ...] = (row, slice(None), *at)
    return np.asarray(array[index])
