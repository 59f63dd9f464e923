"""The truth a product is scored against: a store, or GRIB files prepared into a cache store.

A product's grid must be the truth's grid or a sub-area of it at the same resolution; its points
are located on the truth grid once (longitudes modulo 360, so a product stored as -10..2 finds a
global 0..359.75 truth), and every read returns the truth on exactly the product's points. A
rotated product is located by its rotated axes on a truth store in the same rotated frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atmorep_core.data.ingest_plan import IngestOptions
from atmorep_core.data.prepare import prepare
from atmorep_core.errors import InputDataError, StoreError
from atmorep_core.grid import LatLonGrid
from atmorep_core.io.product import ProductField, ProductGrid
from atmorep_core.io.store import FieldArrays, Store
from atmorep_core.rotated_grid import RotatedGrid

_TOLERANCE_DEG = 1e-3
_BLOCK_BYTES = 256 * 2**20  # per read when a whole window is needed (the climatology)


class Unavailable(Exception):
    """An input of one score is missing for one product: that part is skipped with a note."""


def open_truth(paths: Sequence[Path], fields: Sequence[str], cache: Path) -> Store:
    """One store (a folder), or GRIB files ingested (incrementally) into the store `cache`."""
    if not paths:
        raise StoreError("--truth: give a store or GRIB files")
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise StoreError(f"--truth {', '.join(missing)}: no such store or GRIB file")
    if len(paths) == 1 and paths[0].is_dir():
        return Store.open(paths[0])
    if any(p.is_dir() for p in paths):
        raise StoreError("--truth: give one store, or GRIB files, not both")
    prepare(list(paths), cache, IngestOptions(fields=tuple(fields)))
    return Store.open(cache)


@dataclass(frozen=True)
class Region:
    """Where a product's grid points sit on the truth grid."""

    rows: np.ndarray  # (lat,) truth row of each product row
    columns: np.ndarray  # (lon,) truth column of each product column


def locate(grid: ProductGrid, truth: LatLonGrid) -> Region:
    """The product grid's points on the truth grid; InputDataError if any is not a truth point."""
    grid = _in_frame(grid, truth)
    same_lat = grid.nlat == 1 or abs(abs(grid.lat_step) - abs(truth.lat_step)) < _TOLERANCE_DEG
    same_lon = grid.nlon == 1 or abs(abs(grid.lon_step) - abs(truth.lon_step)) < _TOLERANCE_DEG
    if not (same_lat and same_lon):
        raise InputDataError(
            f"the product grid ({grid.describe()}) and the truth grid ({truth.describe()}) "
            "differ in resolution: regrid one of them first"
        )
    rows = _match(grid.lat_axis, truth.lat_axis, "latitude", truth, period=None)
    columns = _match(grid.lon_axis, truth.lon_axis, "longitude", truth, period=360.0)
    return Region(rows, columns)


def _in_frame(grid: ProductGrid, truth: LatLonGrid) -> LatLonGrid:
    """The product grid as a store grid; InputDataError unless it has the truth's frame (both
    regular, or rotated about the same pole), where rows and columns are the truth's axes."""
    if isinstance(grid, RotatedGrid):
        grid = LatLonGrid.from_rotated(grid)
    if not grid.same_frame(truth):
        raise InputDataError(
            f"the product grid ({grid.describe()}) and the truth grid ({truth.describe()}) "
            "are not in the same (rotated or geographic) frame: regrid one of them first"
        )
    return grid


def _match(
    points: np.ndarray, targets: np.ndarray, name: str, truth: LatLonGrid, period: float | None
) -> np.ndarray:
    difference = points[:, None] - targets[None, :]
    if period is not None:
        difference = (difference + period / 2) % period - period / 2
    nearest = np.abs(difference).argmin(axis=1)
    off = np.abs(difference[np.arange(len(points)), nearest]) > _TOLERANCE_DEG
    if off.any():
        raise InputDataError(
            f"product {name} {points[off][0]:g} is not a point of the truth grid "
            f"({truth.describe()})"
        )
    return nearest


def level_pairs(product_field: ProductField, arrays: FieldArrays) -> list[tuple[int, int]]:
    """(product level index, truth level index) of each product level the truth has.

    A single-level field matches a single-level truth whatever the number: GRIB2 writes 2 m
    temperature on heightAboveGround 2 where ERA5's GRIB1 (and so the store) has surface 0.
    """
    truth_levels = [int(v) for v in arrays.levels]
    if len(product_field.levels) == 1 and len(truth_levels) == 1:
        return [(0, 0)]
    return [
        (i, truth_levels.index(level))
        for i, level in enumerate(product_field.levels)
        if level in truth_levels
    ]


class TruthField:
    """One truth field on a product's grid points and levels, read as float64."""

    def __init__(self, arrays: FieldArrays, region: Region, levels: Sequence[int]) -> None:
        self.arrays, self.region = arrays, region
        self.levels = np.asarray(levels, dtype=np.int64)  # truth level indices
        self.times: np.ndarray = arrays.times  # (time,) datetime64[s]
        self.key = (arrays.name, region.rows.tobytes(), region.columns.tobytes(), tuple(levels))

    def indices(self, times: np.ndarray) -> np.ndarray:
        """(time,) index of each time in the truth, -1 where the truth lacks it."""
        where = np.searchsorted(self.times, times).clip(max=max(len(self.times) - 1, 0))
        found = (len(self.times) > 0) & (self.times[where] == times)
        return np.where(found, where, -1)

    def read(self, times: np.ndarray) -> np.ndarray:
        """(time, level, lat, lon) at the given times, which must all be in the truth."""
        index = self.indices(times)
        if (index < 0).any():
            raise Unavailable(f"no truth for {self.arrays.name} at {times[index < 0][0]}")
        first = int(index.min())
        return self.block(first, int(index.max()) + 1)[index - first]

    def block(self, start: int, stop: int) -> np.ndarray:
        """(time, level, lat, lon) of the truth's time steps start..stop-1."""
        rows, columns = self.region.rows, self.region.columns
        row_slice = slice(int(rows.min()), int(rows.max()) + 1)
        column_slice = slice(int(columns.min()), int(columns.max()) + 1)
        box = self.arrays.fast()[start:stop, :, row_slice, column_slice].read().result()
        box = box[:, self.levels][:, :, rows - row_slice.start][..., columns - column_slice.start]
        return np.asarray(box, dtype=np.float64)

    def blocks(self, index: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """The truth at the given sorted time indices, in pieces: [(indices, values)]."""
        points = len(self.levels) * len(self.region.rows) * len(self.region.columns)
        steps = max(1, _BLOCK_BYTES // (8 * points))
        pieces = []
        for i in range(0, len(index), steps):
            part = index[i : i + steps]
            values = self.block(int(part[0]), int(part[-1]) + 1)
            pieces.append((part, values[part - part[0]]))
        return pieces
