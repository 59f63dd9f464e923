"""Regridding between any set of points on the sphere (any GRIB grid) and a regular lat-lon grid.

A kd-tree (scipy's) finds, in 3-D Cartesian coordinates, the nearest source points of every
target point, so global grids, the date line, the poles and reduced Gaussian rows need no special
case. (pyresample does the same, but it brings pyproj, whose bundled libraries crash the process
at exit once eccodes' wheel is loaded: `import eccodes; import pyproj` ends in SIGSEGV with
eccodes 2.50 and pyproj 3.7.) Each target value is then a local linear fit: a least-squares plane
through those neighbours in the target's tangent plane, weighted by a Gaussian of the distance.
It is exact for fields that vary linearly and second-order accurate for smooth ones (a bilinear
interpolation's order, without its need for a rectilinear source); a neighbour that coincides
with the target point is taken as it is, so regridding a grid onto itself changes nothing.

From an input much finer than the target the fit samples the input near each target point; it
does not average over the target's cell (conservative remapping is left to do).

A regular lat-lon or rotated-pole grid is a set of points like any other (`grid_points`), so a
product regrids onto a rotated target grid (COSMO's, a named one) with `regrid_grid`.

Accuracy (tests/test_correct.py, tests/test_rotated_grid.py): a smooth field on the N80 Gaussian
grid (20 K of zonal structure plus waves 3 and 5 of 5 K and 2 K) goes to a global 1.5-degree
grid within 0.05 K of the truth everywhere, and back within 0.08 K; an octahedral reduced Gaussian
grid (O48) goes to 2 degrees within 0.1 K; a smooth field on a 0.25-degree lat-lon grid goes to
COSMO-D2's and the Met Office NAE's rotated grids within 0.005 K.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from atmorep_core.errors import InputDataError
from atmorep_core.grid import LatLonGrid
from atmorep_core.rotated_grid import RotatedGrid

EARTH_RADIUS_M = 6_371_000.0
NEIGHBOURS = 8  # enough for a well-posed plane fit
RIDGE = 1e-2  # relative to the weights' sum; slopes across a spread of neighbours barely change


@dataclass(frozen=True)
class Points:
    """Where a field's values lie: flat latitudes and longitudes in degrees, in value order."""

    lats: np.ndarray  # (n,)
    lons: np.ndarray  # (n,), any range: taken modulo 360

    def __post_init__(self) -> None:
        if self.lats.shape != self.lons.shape or self.lats.ndim != 1:
            raise ValueError(f"points: lats {self.lats.shape} and lons {self.lons.shape} differ")

    @property
    def size(self) -> int:
        return int(self.lats.size)

    def spacing_m(self) -> float:
        """Typical distance between neighbouring points: the root of the area per point."""
        _, span = lon_extent(self.lons)
        extent = np.ptp(np.sin(np.radians(self.lats))) * np.radians(span)
        return float(EARTH_RADIUS_M * np.sqrt(max(extent, 1e-12) / self.size))

    def spacing_deg(self) -> float:
        return float(np.degrees(self.spacing_m() / EARTH_RADIUS_M))


def grid_points(grid: LatLonGrid | RotatedGrid) -> Points:
    """A grid's points in the order of its values, row by row."""
    if isinstance(grid, RotatedGrid):
        return Points(grid.lats.ravel(), grid.lons.ravel())
    lats, lons = grid.geographic()  # a store grid in a rotated frame too
    return Points(lats.ravel(), lons.ravel())


def regrid_grid(
    values: np.ndarray, source: LatLonGrid | RotatedGrid, target: LatLonGrid | RotatedGrid
) -> np.ndarray:
    """(..., rows, columns) values on `source` -> (..., rows, columns) on `target`.

    InputDataError (naming the target grid) where the target reaches beyond the source.
    """
    if values.shape[-2:] != source.shape:
        raise ValueError(f"regrid: values of shape {values.shape[-2:]}, source grid {source.shape}")
    try:
        regridder = Regridder(grid_points(source), grid_points(target))
    except InputDataError as error:
        raise InputDataError(f"{error} (target: {target.describe()})") from error
    flat = regridder(values.reshape(*values.shape[:-2], -1))
    return flat.reshape(*values.shape[:-2], *target.shape)


def lon_extent(lons: np.ndarray) -> tuple[float, float]:
    """(westernmost longitude, degrees covered eastwards); 360 degrees for a grid round the globe.

    The points' westernmost longitude lies east of the widest gap between them; a global grid's
    widest gap is one grid step, which counts as covered."""
    ordered = np.sort(np.unique(np.round(lons % 360.0, 6)))
    if ordered.size < 2:
        return float(ordered[0]), 0.0
    gaps = np.diff(np.concatenate([ordered, [ordered[0] + 360.0]]))
    widest = int(np.argmax(gaps))
    if gaps[widest] <= 1.5 * np.median(gaps):
        return float(ordered[0]), 360.0
    west = ordered[(widest + 1) % ordered.size]
    return float(west), float(360.0 - gaps[widest])


class Regridder:
    """Linear map from values at `source` points to values at `target` points (precomputed)."""

    def __init__(self, source: Points, target: Points) -> None:
        from scipy.spatial import KDTree  # slow import, only products regrid

        radius = 3.0 * max(source.spacing_m(), target.spacing_m())
        tree = KDTree(_unit_vectors(source))
        chord, index = tree.query(
            _unit_vectors(target), k=NEIGHBOURS, distance_upper_bound=radius / EARTH_RADIUS_M
        )
        found = index < source.size  # the tree marks "no neighbour" by the source size
        if not np.all(found.sum(axis=1) >= 3):
            raise InputDataError("regrid: some target points have no source points around them")
        # A missing neighbour points at source 0 with an infinite distance: weight 0.
        self.index = np.where(found, index, 0)  # (m, k) source indices
        distance = np.where(found, chord * EARTH_RADIUS_M, np.inf)  # chord ~ arc at this range
        self.weights = _plane_weights(source, target, self.index, distance, radius / 3.0)
        self.source_size = source.size

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """(..., n source) values -> (..., m target) values."""
        if values.shape[-1] != self.source_size:
            raise ValueError(f"regrid: {values.shape[-1]} values for {self.source_size} points")
        picked = values[..., self.index]  # (..., m, k)
        return np.einsum("...mk,mk->...m", picked, self.weights)


def _unit_vectors(points: Points) -> np.ndarray:
    """(n, 3) Cartesian coordinates on the unit sphere: no date line, no poles to special-case."""
    lat, lon = np.radians(points.lats), np.radians(points.lons)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)


def _plane_weights(
    source: Points, target: Points, index: np.ndarray, distance: np.ndarray, scale_m: float
) -> np.ndarray:
    """(m, k) weights of a Gaussian-weighted least-squares plane fit evaluated at each target."""
    east, north = _tangent_offsets(source, target, index)  # (m, k) metres
    gauss = np.exp(-((distance / scale_m) ** 2))  # (m, k)
    design = np.stack([np.ones_like(east), east / scale_m, north / scale_m], axis=-1)  # (m, k, 3)
    normal = np.einsum("mki,mk,mkj->mij", design, gauss, design)  # (m, 3, 3)
    # A little ridge on the slopes: where the neighbours lie almost on a line (the arc of a
    # Gaussian grid's ring nearest a pole) the slope across it falls to zero, not to noise.
    normal += RIDGE * gauss.sum(axis=1)[:, None, None] * np.diag([0.0, 1.0, 1.0])
    unit = np.broadcast_to([[1.0], [0.0], [0.0]], (len(normal), 3, 1))
    first = np.linalg.solve(normal, unit)[..., 0]  # (m, 3): the fit's value at the target
    weights = np.einsum("mi,mki,mk->mk", first, design, gauss)
    coincident = distance < 1e-3 * scale_m  # a source point on the target: take it exactly
    hit = coincident.any(axis=1)
    weights[hit] = coincident[hit] / coincident[hit].sum(axis=1, keepdims=True)
    return weights


def _tangent_offsets(
    source: Points, target: Points, index: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """East and north offsets in metres of each neighbour from its target point."""
    lat0, lon0 = np.radians(target.lats)[:, None], np.radians(target.lons)[:, None]
    lat, lon = np.radians(source.lats[index]), np.radians(source.lons[index])
    # Azimuthal projection on the target's tangent plane: well defined up to the poles.
    cos_c = np.sin(lat0) * np.sin(lat) + np.cos(lat0) * np.cos(lat) * np.cos(lon - lon0)
    angle = np.arccos(np.clip(cos_c, -1.0, 1.0))
    scale = np.where(angle > 1e-12, angle / np.maximum(np.sin(angle), 1e-12), 1.0)
    east = np.cos(lat) * np.sin(lon - lon0)
    north = np.cos(lat0) * np.sin(lat) - np.sin(lat0) * np.cos(lat) * np.cos(lon - lon0)
    return EARTH_RADIUS_M * scale * east, EARTH_RADIUS_M * scale * north
