"""The original AtmoRep's normalisation as a statistics store (`import-atmorep --normalisation`).

Products read per-grid-point monthly statistics from a store (`engine.statistics`), so the
original's are written into one, on the original's grid and without data: per field and month
a count of 1, the mean, and m2 = std**2, so that the store's standard deviation is the original's.
The original's global statistics are per level and month, which a checkpoint's per-level
("global") normalisation cannot hold: they are written repeated at every grid point and the field
is normalised as "local", so a product normalises each month exactly as the original did.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from atmorep_core.data.normalize import Moments, pool_grid_points
from atmorep_core.errors import StoreError
from atmorep_core.grid import LatLonGrid
from atmorep_core.io.store import FieldArrays, Store
from atmorep_core.model.config import FieldModelConfig
from atmorep_core.model.original.normalisation import OriginalNormalisation, Statistics


def write_original_statistics(
    original: OriginalNormalisation,
    fields: Sequence[FieldModelConfig],
    like: Store,
    path: Path,
    recorded_as: Path,
) -> dict[str, Any]:
    """Write the statistics store at `path` and return the checkpoint's normalisation of each
    field, naming the store `recorded_as` (where it will lie); `like`: the store of the model's
    data, whose grid the original's must be and whose field descriptions are copied."""
    grid = original_grid(original)
    if grid.shape != like.grid.shape or not (
        np.allclose(grid.lat_axis, like.grid.lat_axis)
        and np.allclose(grid.lon_axis, like.grid.lon_axis)
    ):
        raise StoreError(
            f"{original.path}: the original's statistics are on {grid.describe()}, the store "
            f"{like.path} on {like.grid.describe()}"
        )
    store = Store.create(path, grid)
    result = {}
    for field in fields:
        arrays = store.add_field(like.field(field.name).meta, np.array(field.levels))
        rows = original.month_rows(field.name, field.levels, field.normalisation)
        months, pooled = _write_months(arrays, rows)
        if not months:
            raise StoreError(f"{original.path}: no computed month of {field.name}")
        result[field.name] = {
            "kind": "local",
            "store": str(recorded_as),
            "levels": list(field.levels),
            "global_mean": [float(v) for v in pooled.mean],
            "global_std": [float(v) for v in pooled.std],
            "months": months,
        }
    store.commit_sources([])
    store.consolidate()
    return result


def original_grid(original: OriginalNormalisation) -> LatLonGrid:
    """The regular lat-lon grid of the original's statistics."""
    lats, lons = original.latitudes, original.longitudes
    for name, axis in (("lats", lats), ("lons", lons)):
        if len(axis) < 2 or not np.allclose(np.diff(axis), axis[1] - axis[0]):
            raise StoreError(f"{original.path}: {name} is not a regular axis")
    return LatLonGrid(
        float(lats[0]), float(lats[1] - lats[0]), len(lats),
        float(lons[0]), float(lons[1] - lons[0]), len(lons),
    )  # fmt: skip


def _write_months(
    arrays: FieldArrays, rows: Iterator[tuple[int, Statistics]]
) -> tuple[list[int], Moments]:
    """Each month's statistics as one row; returns the months and the moments over all."""
    months: list[int] = []
    pooled = Moments(0.0, np.zeros(0), np.zeros(0))
    for month, (mean, std) in rows:
        row = len(months)
        for name in ("month", "local_count", "local_mean", "local_m2"):
            array = arrays.array(f"stats/{name}")
            array.resize((row + 1, *array.shape[1:]))
        arrays.array("stats/month")[row] = month
        arrays.array("stats/local_count")[row] = 1.0
        arrays.fast("stats/local_mean")[row].write(mean).result()
        arrays.fast("stats/local_m2")[row].write(std**2).result()
        months.append(month)
        pooled = pooled.merge(pool_grid_points(Moments(1.0, mean, std**2)))
    arrays.array("stats/global_count")[:] = np.broadcast_to(pooled.count, pooled.mean.shape)
    arrays.array("stats/global_mean")[:] = pooled.mean
    arrays.array("stats/global_m2")[:] = pooled.m2
    return months, pooled
