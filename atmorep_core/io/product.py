"""What a run hands to the product writers: ensembles of fields on their grids at lead times.

A field's grid is a regular lat-lon grid (the store's) or a rotated-pole grid (a regional
model's, e.g. COSMO's); every writer handles both. A store grid in a rotated frame (a LatLonGrid
with a pole) becomes the equivalent RotatedGrid here, so that every writer takes its rotated
path (GRIB2 rotated_ll, CF rotated_latitude_longitude, maps at geographic coordinates).

A `Product` is checked once, on construction, so that every writer (GRIB2, CF NetCDF, PNG maps)
can trust its shapes and values. The ensemble statistics live here too, so that every format
reports the same mean, spread and quantiles.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path

import numpy as np

from atmorep_core.errors import AtmorepError
from atmorep_core.fields import Field, lookup
from atmorep_core.grid import LatLonGrid
from atmorep_core.io.filesystem import ensure_folder, writing
from atmorep_core.rotated_grid import RotatedGrid

PRODUCT_KINDS = ("forecast", "correction", "interpolation", "counterfactual", "downscaling")
ProductGrid = LatLonGrid | RotatedGrid


@dataclass(frozen=True)
class ProductField:
    """One field of a product: an ensemble on a lat-lon or rotated-pole grid at some leads."""

    name: str  # canonical field name, fields.lookup(name) works
    level_type: str  # GRIB typeOfLevel as the store records it: "hybrid", "isobaricInhPa", ...
    levels: tuple[int, ...]  # model / pressure levels; (0,) for a surface field
    grid: ProductGrid  # lat may run N->S or S->N; lon may be regional or global
    values: np.ndarray  # (member, step, level, lat, lon) float32; rotated: (..., rlat, rlon)

    def __post_init__(self) -> None:
        try:
            lookup(self.name)
        except AtmorepError as error:
            raise ValueError(f"product field: {error}") from error
        object.__setattr__(self, "grid", product_grid(self.grid))
        # Coerced once here so that every writer sees float32, whatever the engine produced.
        object.__setattr__(self, "values", np.asarray(self.values, dtype=np.float32))
        self._check_levels()
        self._check_values()

    def _check_levels(self) -> None:
        if not self.levels or len(set(self.levels)) != len(self.levels):
            raise ValueError(f"{self.name}: levels {self.levels} must be non-empty and unique")

    def _check_values(self) -> None:
        shape = self.values.shape
        if len(shape) != 5 or shape[0] < 1 or shape[1] < 1:
            raise ValueError(
                f"{self.name}: values must be (member, step, level, lat, lon) with at least one "
                f"member and step, got shape {shape}"
            )
        if shape[2] != len(self.levels):
            raise ValueError(f"{self.name}: {shape[2]} levels of values, {len(self.levels)} given")
        if shape[3:] != self.grid.shape:
            raise ValueError(
                f"{self.name}: values are {shape[3]} x {shape[4]} points, not those of the grid "
                f"({self.grid.describe()})"
            )
        if not np.all(np.isfinite(self.values)):
            raise ValueError(f"{self.name}: values are not all finite")

    @property
    def catalogue(self) -> Field:
        return lookup(self.name)

    @property
    def members(self) -> int:
        return int(self.values.shape[0])

    def mean(self) -> np.ndarray:
        """Ensemble mean, (step, level, lat, lon) float32, summed in float64."""
        return self.values.mean(axis=0, dtype=np.float64).astype(np.float32)

    def spread(self) -> np.ndarray:
        """Ensemble standard deviation (ddof=1: an unbiased estimate); 0 for one member."""
        if self.members == 1:
            return np.zeros(self.values.shape[1:], dtype=np.float32)
        return self.values.std(axis=0, ddof=1, dtype=np.float64).astype(np.float32)

    def quantiles(self, probabilities: Sequence[float] | np.ndarray) -> np.ndarray:
        """Ensemble quantiles (numpy's linear interpolation), (quantile, step, level, lat, lon).

        Interpolated between sorted members in float32: `np.quantile` works in float64 with
        temporaries of about twenty times the values (half a GB for a 22 MB field).
        """
        ordered = np.sort(self.values, axis=0)  # (member, step, level, lat, lon)
        out = np.empty((len(probabilities), *ordered.shape[1:]), dtype=np.float32)
        for i, p in enumerate(probabilities):
            position = float(p) * (self.members - 1)
            below = int(np.floor(position))
            above = min(below + 1, self.members - 1)
            weight = np.float32(position - below)
            out[i] = ordered[below] + weight * (ordered[above] - ordered[below])
        return out


def product_grid(grid: ProductGrid) -> ProductGrid:
    """The grid as writers take it: a store grid in a rotated frame as the `RotatedGrid` it is."""
    if isinstance(grid, LatLonGrid) and grid.is_rotated:
        return grid.rotated()
    return grid


@dataclass(frozen=True)
class Product:
    """What one run produces: fields sharing a base time, lead steps and ensemble size."""

    init: datetime  # base time, naive UTC
    steps_hours: tuple[int, ...]  # lead times in hours, ascending, >= 0
    fields: tuple[ProductField, ...]
    kind: str = "forecast"  # what the values are, one of PRODUCT_KINDS
    attributes: Mapping[str, str] = field(default_factory=dict)  # provenance

    def __post_init__(self) -> None:
        if self.init.tzinfo is not None:
            raise ValueError(f"init {self.init} must be naive UTC (no tzinfo)")
        if self.kind not in PRODUCT_KINDS:
            raise ValueError(f"product kind {self.kind!r} is not one of {PRODUCT_KINDS}")
        steps = self.steps_hours
        if not steps or steps[0] < 0 or any(b <= a for a, b in pairwise(steps)):
            raise ValueError(f"steps_hours {steps} must be non-empty, >= 0 and ascending")
        self._check_fields()
        bad = {k: v for k, v in self.attributes.items() if not isinstance(v, str)}
        if bad:
            raise ValueError(f"attributes must be strings: {sorted(bad)} are not")

    def _check_fields(self) -> None:
        if not self.fields:
            raise ValueError("a product needs at least one field")
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"field names are not unique: {names}")
        for product_field in self.fields:
            if product_field.values.shape[1] != len(self.steps_hours):
                raise ValueError(
                    f"{product_field.name}: {product_field.values.shape[1]} steps of values, "
                    f"{len(self.steps_hours)} lead times given"
                )
            if product_field.members != self.members:
                raise ValueError(
                    f"{product_field.name}: {product_field.members} members, "
                    f"{self.fields[0].name} has {self.members}"
                )

    @property
    def members(self) -> int:
        """Ensemble size; 1 means a deterministic product."""
        return self.fields[0].members

    @property
    def valid_times(self) -> tuple[datetime, ...]:
        return tuple(self.init + timedelta(hours=step) for step in self.steps_hours)

    def field_named(self, name: str) -> ProductField:
        for product_field in self.fields:
            if product_field.name == name:
                return product_field
        raise ValueError(f"no field {name!r} in the product (has {[f.name for f in self.fields]})")


@contextmanager
def atomic_output(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it to `path` only if the block succeeds.

    On an error the temporary file is removed and any earlier file at `path` is kept, so nothing
    half-written ever sits under the final name. A full disk, a read-only file system and the
    like raise FileSystemError naming `path` (`io.filesystem`).
    """
    final = Path(path)
    ensure_folder(final.parent)
    temporary = final.with_name(f"{final.name}.tmp")
    try:
        with writing(final):  # inside: a full disk is judged before the temporary is removed
            yield temporary
            os.replace(temporary, final)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
