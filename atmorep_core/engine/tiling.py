"""Cover a grid, or an area of it, with overlapping neighbourhood tiles, and blend them back.

A model answers for one neighbourhood (a tile of `rows x cols` grid points). A global or regional
product is many tiles: they start every half tile along each axis, so that every point away
from the grid's edges lies in the inner half of some tile, and their predictions are blended with
separable Hann weights (largest mid-tile, small at the tile's edge). Shifted by half their
length, Hann weights sum to a constant, so the blend has no seams, and because the stitched sum
is divided by the summed weights, tiles that agree give back exactly what they agree on.

Tiles never cross a pole (rows stay inside the grid); on grids that are global in longitude they
wrap across the date line. The tiles, and the stitched result, cover a *domain*: the rows from
the first tile's to the last's, and the columns from the westernmost tile's to the easternmost's
(every column when the tiles go all round a global grid). An area asked for is padded by half a
tile on each side where the grid allows, so that its border points have context on every side.

On a rotated store grid (COSMO-REA6's) tiles are blocks of its rotated rows and columns like any
others; a product keeps the grid's pole, and an area given in geographic degrees becomes the
block of rows and columns around the grid points inside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from atmorep_core.errors import ConfigError
from atmorep_core.grid import LatLonGrid


@dataclass(frozen=True)
class Area:
    """Rows [row_start, row_stop) and columns [col_start, col_start + cols) of a grid.

    On a wrapping grid a column index is taken modulo nlon, so an area may cross the date line.
    """

    row_start: int
    row_stop: int
    col_start: int
    cols: int

    @classmethod
    def whole(cls, grid: LatLonGrid) -> Area:
        return cls(0, grid.nlat, 0, grid.nlon)

    @property
    def rows(self) -> int:
        return self.row_stop - self.row_start


@dataclass(frozen=True)
class Tiling:
    """Where the tiles of one product lie, in grid indices; see the module docstring."""

    grid: LatLonGrid
    tile: tuple[int, int]  # (rows, cols) of one tile
    lat_starts: tuple[int, ...]  # first row of each tile row
    lon_starts: tuple[int, ...]  # first column of each tile column (in [0, nlon) when wrapping)
    area: Area  # what the product covers

    @property
    def wraps(self) -> bool:
        return self.grid.is_global_in_lon

    @property
    def circle(self) -> bool:
        """True when the tiles go all round a wrapping grid (the domain is every column)."""
        return (
            self.wraps and self.tile[1] + self.lon_starts[-1] - self.lon_starts[0] >= self.grid.nlon
        )

    @property
    def positions(self) -> list[tuple[int, int]]:
        """(lat_start, lon_start) of every tile, row by row."""
        return [(lat, lon) for lat in self.lat_starts for lon in self.lon_starts]

    @property
    def domain_rows(self) -> slice:
        return slice(self.lat_starts[0], self.lat_starts[-1] + self.tile[0])

    @property
    def domain_columns(self) -> np.ndarray:
        """Grid column of each domain column, west to east (may cross the date line)."""
        if self.circle:
            return np.arange(self.grid.nlon)
        span = self._offset(self.lon_starts[-1]) + self.tile[1]
        return self._grid_columns(self.lon_starts[0] + np.arange(span))

    @property
    def domain_shape(self) -> tuple[int, int]:
        rows = self.domain_rows
        return rows.stop - rows.start, len(self.domain_columns)

    def tile_columns(self, lon_start: int) -> np.ndarray:
        """Domain column indices of a tile's columns, west to east."""
        if self.circle:
            return (lon_start + np.arange(self.tile[1])) % self.grid.nlon
        return self._offset(lon_start) + np.arange(self.tile[1])

    def tile_rows(self, lat_start: int) -> slice:
        """Domain row indices of a tile's rows."""
        first = lat_start - self.domain_rows.start
        return slice(first, first + self.tile[0])

    def area_in_domain(self) -> tuple[slice, np.ndarray]:
        """Domain rows and columns of the area."""
        offset = self.domain_rows.start
        rows = slice(self.area.row_start - offset, self.area.row_stop - offset)
        columns = self.area.col_start + np.arange(self.area.cols)
        if self.circle:
            return rows, columns % self.grid.nlon
        return rows, self._offset(columns)

    def _offset(self, column: Any) -> Any:
        """Columns counted east from the domain's first column."""
        offset = column - self.lon_starts[0]
        return offset % self.grid.nlon if self.wraps else offset

    def _grid_columns(self, column: np.ndarray) -> np.ndarray:
        return column % self.grid.nlon if self.wraps else column

    def area_grid(self) -> LatLonGrid:
        """The product's grid: the area's rows and columns of the store's grid (and its pole)."""
        g, a = self.grid, self.area
        lon_first = g.lon_first + g.lon_step * a.col_start
        if self.wraps:
            lon_first %= 360.0
        lat_first = g.lat_first + g.lat_step * a.row_start
        return replace(g, lat_first=lat_first, nlat=a.rows, lon_first=lon_first, nlon=a.cols)


def tile(grid: LatLonGrid, tile_shape: tuple[int, int], area: Area | None = None) -> Tiling:
    """Tiles of `tile_shape` points covering `area` (default: the whole grid), half-overlapping."""
    area = area or Area.whole(grid)
    rows, cols = tile_shape
    if rows > grid.nlat or cols > grid.nlon:
        raise ConfigError(
            f"tile: neighbourhoods of {rows} x {cols} points do not fit the grid "
            f"{grid.nlat} x {grid.nlon}"
        )
    lat_starts = _axis_starts(area.row_start, area.row_stop, rows, grid.nlat)
    padded = area.cols + 2 * (cols // 2)
    if grid.is_global_in_lon and padded >= grid.nlon:
        lon_starts = _circle_starts(cols, grid.nlon)
    elif grid.is_global_in_lon:  # an area on a global grid: tiles may cross the date line
        relative = _axis_starts(cols // 2, cols // 2 + area.cols, cols, padded)
        first = area.col_start - cols // 2
        lon_starts = tuple((first + s) % grid.nlon for s in relative)
    else:
        lon_starts = _axis_starts(area.col_start, area.col_start + area.cols, cols, grid.nlon)
    return Tiling(grid, tile_shape, lat_starts, lon_starts, area)


def _axis_starts(lo: int, hi: int, size: int, n: int) -> tuple[int, ...]:
    """Starts of tiles of `size` inside [0, n) covering [lo, hi), padded by size // 2 if it fits."""
    first, last = max(0, lo - size // 2), min(n, hi + size // 2)
    if last - first < size:  # a small area: one tile centred on it, moved inside the grid
        centre = (lo + hi) // 2
        return (min(max(centre - size // 2, 0), n - size),)
    stride = max(1, size // 2)
    starts = list(range(first, last - size + 1, stride))
    if starts[-1] != last - size:
        starts.append(last - size)
    return tuple(starts)


def _circle_starts(size: int, n: int) -> tuple[int, ...]:
    """Evenly spaced starts all round a circle of n columns, at most half a tile apart."""
    count = max(2, math.ceil(n / max(1, size // 2)))
    return tuple(sorted({round(i * n / count) % n for i in range(count)}))


def hann_weights(rows: int, cols: int) -> np.ndarray:
    """(rows, cols) float64 blending weights: separable Hann, positive everywhere, peak 1."""
    return np.outer(hann(rows), hann(cols))


def hann(n: int) -> np.ndarray:
    """(n,) float64 Hann weights, positive everywhere, peak 1."""
    # Sampled at cell centres, so the edge cells keep a small positive weight.
    return np.sin(np.pi * (np.arange(n) + 0.5) / n) ** 2


class Stitcher:
    """Accumulates weighted tiles over the domain and divides by the summed weights."""

    def __init__(self, tiling: Tiling, leading: tuple[int, ...]) -> None:
        """`leading`: the dimensions in front of (lat, lon) of every tile, e.g. (level, time)."""
        self.tiling = tiling
        shape = tiling.domain_shape
        self.total = np.zeros((*leading, *shape), dtype=np.float64)
        self.weight = np.zeros(shape, dtype=np.float64)
        self.tile_weight = hann_weights(*tiling.tile)

    def add(self, values: np.ndarray, lat_start: int, lon_start: int) -> None:
        """Blend in one tile's (..., rows, cols) values at its position."""
        rows, cols = self.tiling.tile_rows(lat_start), self.tiling.tile_columns(lon_start)
        self.total[..., rows, cols] += values * self.tile_weight
        self.weight[rows, cols] += self.tile_weight

    def result(self) -> np.ndarray:
        """(..., domain rows, domain cols) float32; every domain point is covered by a tile."""
        return (self.total / self.weight).astype(np.float32)


def area_from_bounds(grid: LatLonGrid, bounds: tuple[float, float, float, float]) -> Area:
    """The grid rows and columns inside (N, W, S, E) geographic degrees; E < W crosses the date
    line. On a rotated grid: the smallest block of rows and columns holding every point inside."""
    north, west, south, east = bounds
    name = "/".join(f"{b:g}" for b in bounds)
    if not -90.0 <= south <= north <= 90.0:
        raise ConfigError(f"--area {name}: need -90 <= S <= N <= 90")
    width = 360.0 if east - west >= 360.0 else (east - west) % 360.0
    if grid.is_rotated:
        return _rotated_area(grid, (north, west, south, width), name)
    rows = np.flatnonzero(_between(grid.lats, south, north))
    offset = (grid.lons - west) % 360.0  # degrees east of the western edge
    inside = offset <= width + 1e-6
    if rows.size == 0 or not inside.any():
        raise ConfigError(f"--area {name}: no grid point inside")
    if grid.is_global_in_lon:
        # The first column east of the western edge, then every column up to the eastern one.
        first = int(np.argmin(np.where(inside, offset, np.inf)))
        return Area(int(rows[0]), int(rows[-1]) + 1, first, int(inside.sum()))
    columns = np.flatnonzero(inside)
    if np.any(np.diff(columns) != 1):
        raise ConfigError(f"--area {name}: not one block of the grid")
    return Area(int(rows[0]), int(rows[-1]) + 1, int(columns[0]), len(columns))


def _between(lats: np.ndarray, south: float, north: float) -> np.ndarray:
    return (lats >= south - 1e-6) & (lats <= north + 1e-6)


def _rotated_area(grid: LatLonGrid, box: tuple[float, float, float, float], name: str) -> Area:
    """Rows and columns of a rotated grid around its points inside (N, W, S, width east of W):
    a geographic box is no block of a rotated grid, so the block holding it is taken."""
    north, west, south, width = box
    lats, lons = grid.geographic()
    inside = _between(lats, south, north) & ((lons - west) % 360.0 <= width + 1e-6)
    rows, columns = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    if rows.size == 0:
        raise ConfigError(f"--area {name}: no grid point inside")
    return Area(
        int(rows[0]), int(rows[-1]) + 1, int(columns[0]), int(columns[-1]) - int(columns[0]) + 1
    )
