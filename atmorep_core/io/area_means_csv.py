"""Product -> CSV of area means: one row per lead (and member of an ensemble), one column per
field and level, the area-weighted mean of its values over the product's grid.

    valid_time,step_hours,member,temperature_isobaricInhPa500,...,t2m_surface0
    2017-01-02T12:00:00,12,1,253.61962890625,...

A regular grid's cells have areas proportional to the cosine of their row's latitude; a
rotated-pole grid is regular in its rotated frame, so there the rotated latitude weighs the rows.
The means are summed in float64 and written as Python's shortest repr, which reads back exactly.
Columns are named as the maps are (`plotting`): field, level type and level.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from atmorep_core.io.product import Product, ProductField, ProductGrid, atomic_output
from atmorep_core.rotated_grid import RotatedGrid


def write_area_means_csv(product: Product, path: Path | str) -> None:
    """Write the area means of `product` as CSV to `path` (atomically)."""
    with atomic_output(path) as temporary, open(temporary, "w", newline="") as stream:
        table = csv.writer(stream)
        table.writerow(_header(product))
        table.writerows(_rows(product))


def area_means(product_field: ProductField) -> np.ndarray:
    """(member, step, level) float64: each 2-D field's area-weighted mean over its grid."""
    weights = np.cos(np.deg2rad(_row_latitudes(product_field.grid))).clip(min=0.0)  # (lat,)
    rows = product_field.values.mean(axis=-1, dtype=np.float64)  # (member, step, level, lat)
    return np.asarray((rows * weights).sum(axis=-1) / weights.sum())


def _row_latitudes(grid: ProductGrid) -> np.ndarray:
    return grid.rlats if isinstance(grid, RotatedGrid) else grid.lats


def _header(product: Product) -> list[str]:
    leads = ["valid_time", "step_hours"] + (["member"] if product.members > 1 else [])
    columns = [f"{f.name}_{f.level_type}{level}" for f in product.fields for level in f.levels]
    return leads + columns


def _rows(product: Product) -> Iterator[list[object]]:
    means = [area_means(f) for f in product.fields]  # each (member, step, level)
    leads = zip(product.steps_hours, product.valid_times, strict=True)
    for s, (step, valid) in enumerate(leads):
        for m in range(product.members):
            member = [m + 1] if product.members > 1 else []
            values = [float(value) for mean in means for value in mean[m, s]]
            yield [valid.isoformat(), step, *member, *values]
