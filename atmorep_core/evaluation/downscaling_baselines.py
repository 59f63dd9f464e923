"""What a downscaling product is scored beside: the coarse input it was made from, interpolated
bilinearly onto the product's points, and per grid point a linear regression of the truth on
that bilinear value and the hour of day (two harmonics), fitted on the climatology's window
(the checkpoint's training window).

The coarse input is the store the product names (attribute `input_store`: what `downscale`
read, GRIB input prepared into the output folder). Bilinear interpolation is scipy's, between
the coarse points' values at their own coordinates, extrapolated linearly past the outermost
ones (a product reaches half a coarse cell beyond them). A product on a rotated grid (a
COSMO-REA6-like store's) takes the interpolation at its points' geographic coordinates.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.interpolate import RegularGridInterpolator

from atmorep_core.evaluation.climatology import HOURS, Window, hour_of_day
from atmorep_core.evaluation.truth import TruthField, Unavailable
from atmorep_core.io.product import ProductGrid
from atmorep_core.io.store import Store
from atmorep_core.rotated_grid import RotatedGrid

HARMONICS = 2


class CoarseInput:
    """One field of a downscaling product's coarse input, interpolated onto the product's grid."""

    def __init__(self, input_store: str, name: str, grid: ProductGrid) -> None:
        path = Path(input_store)
        if not input_store or not (path / "zarr.json").exists():
            raise Unavailable("the product names no coarse input store that is still there")
        store = Store.open(path)
        if name not in store.fields:
            raise Unavailable(f"the coarse input {path} has no field {name!r}")
        if store.grid.is_rotated:
            raise Unavailable(f"the coarse input {path} is on a rotated grid: no bilinear axes")
        self.arrays, self.coarse, self.grid = store.field(name), store.grid, grid

    def bilinear(self, times: np.ndarray) -> np.ndarray:
        """(time, level, lat, lon) at the given times; Unavailable where the input lacks one."""
        index = np.searchsorted(self.arrays.times, times).clip(max=len(self.arrays.times) - 1)
        if not (self.arrays.times[index] == times).all():
            raise Unavailable(f"the coarse input has no {self.arrays.name} at some of {times[:3]}")
        first, last = int(index.min()), int(index.max())
        block = np.asarray(self.arrays.data[first : last + 1], dtype=np.float64)
        values = block[index - first]  # (time, level, lat, lon)
        lats, lons = self.coarse.lats, _unwrapped(self.coarse.lons)
        order = np.argsort(lats)  # scipy wants increasing axes
        points_lat, points_lon = _geographic(self.grid)  # (lat, lon) each, of any grid
        targets = np.stack([points_lat, _near(points_lon, lons)], axis=-1)
        out = np.empty((*values.shape[:2], *self.grid.shape))
        for t, level in np.ndindex(*values.shape[:2]):
            interpolate = RegularGridInterpolator(
                (lats[order], lons), values[t, level][order], bounds_error=False, fill_value=None
            )
            out[t, level] = interpolate(targets)
        return out


def regression_fit(
    coarse: CoarseInput, truth: TruthField, window: Window
) -> np.ndarray:  # (level, lat, lon, features)
    """Per grid point least squares of the truth on [bilinear, hour harmonics, 1] in the window."""
    inside = truth.times <= window.last
    if window.first is not None:
        inside &= truth.times >= window.first
    times = truth.times[inside & np.isin(truth.times, coarse.arrays.times)]
    if len(times) < 4 * (2 * HARMONICS + 2):
        raise Unavailable(
            f"the window {window.describe()} holds {len(times)} times with both the truth and "
            "the coarse input: too few to fit a regression per grid point"
        )
    normal, moment = 0.0, 0.0
    for part in np.array_split(times, max(1, len(times) // 96)):
        features = regression_features(coarse.bilinear(part), part)  # (t, L, lat, lon, F)
        target = truth.read(part)
        normal = normal + np.einsum("t...f,t...g->...fg", features, features)
        moment = moment + np.einsum("t...f,t...->...f", features, target)
    return np.linalg.solve(np.asarray(normal), np.asarray(moment)[..., None])[..., 0]


def regression_features(bilinear: np.ndarray, times: np.ndarray) -> np.ndarray:
    """(time, level, lat, lon, 2 + 2 * HARMONICS): the bilinear value, the hour's harmonics, 1."""
    angle = 2 * np.pi * hour_of_day(times) / HOURS
    cycle = [f(k * angle) for k in range(1, HARMONICS + 1) for f in (np.sin, np.cos)]
    constant = np.stack([*cycle, np.ones_like(angle)], axis=1)[:, None, None, None, :]
    return np.concatenate(
        [bilinear[..., None], np.broadcast_to(constant, (*bilinear.shape, constant.shape[-1]))],
        axis=-1,
    )


def _geographic(grid: ProductGrid) -> tuple[np.ndarray, np.ndarray]:
    """Geographic latitude and longitude of every point of a product grid, (lat, lon) each."""
    if isinstance(grid, RotatedGrid):
        return grid.lats, grid.lons
    return grid.geographic()


def _unwrapped(lons: np.ndarray) -> np.ndarray:
    """Longitudes increasing without a jump (a grid across 0 degrees: 350 .. 361)."""
    return lons[0] + np.mod(lons - lons[0], 360.0)


def _near(lons: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """`lons` shifted by whole turns to lie near the reference axis."""
    return reference[0] + np.mod(lons - reference[0] + 180.0, 360.0) - 180.0
