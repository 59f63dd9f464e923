"""Whether a product's input lies within the checkpoint's experience: what it was trained on.

A model answers well only near the data it learned from; fed a region, a season or values it
never saw it still answers, plausibly and wrongly (a real IFS forecast over Europe in November
given to a model of a simulated planet in January changed the temperature by 10 K). So before a
product runs, its input is compared with the checkpoint's training data:

- region: the share of the input's points outside the training store's grid, and a grid spacing
  other than the training store's where the model is asked on the input's own grid. Downscaling
  maps its coarse input onto the model's grid and uses only the part inside: it is asked neither.
- months: calendar months of the input that the checkpoint's statistics never held.
- values: per field and level, the input as the model would see it, normalised as in training:
  a locally normalised field with the training store's mean and standard deviation at the
  nearest grid point in the same month (or the nearest month the store has, as `statistics.py`
  does), a globally normalised one with the checkpoint's per level. Training data give a mean
  near 0 and a spread (standard deviation) of about 1 at a point, or less over a region; a mean
  beyond +-MEAN_LIMIT or a spread above SPREAD_LIMIT is unfamiliar. A spread below 1 is not:
  short windows, regions and coarse input for downscaling vary less than the training data.
  Where the training store is gone, the checkpoint's statistics per level stand in for local
  ones (and the region is not checked).

Findings are sentences. `accept` refuses them in one line (InputDataError, exit code 3), or, when
the user allows unfamiliar input, returns them for the product's manifest and log. The check
reads a sample of the input: at most MAX_TIMES times and about MAX_POINTS points.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from atmorep_core.data.neighbourhood import months_of
from atmorep_core.data.normalize import MIN_STD
from atmorep_core.engine.statistics import nearest_month
from atmorep_core.engine.trained import TrainedModel
from atmorep_core.errors import InputDataError, StoreError
from atmorep_core.grid import LatLonGrid, grid_position
from atmorep_core.io.grib_messages import read_values
from atmorep_core.io.grib_scan import scan_headers
from atmorep_core.io.store import Store
from atmorep_core.products.correct_input import Need, select

# Limits on the normalised input (the messages name them): the training data's mean is about 0
# and its standard deviation about 1.
MEAN_LIMIT = 5.0  # |mean|, in the training data's standard deviations
SPREAD_LIMIT = 5.0  # standard deviation
# Normalised values are clipped here, so that a point whose training values never varied (a dry
# point's precipitation) weighs as one far-off value instead of an infinite one.
CLIP = 50.0
OUTSIDE_LIMIT = 0.01  # share of the input's points outside the training grid that is unfamiliar
MAX_TIMES = 24
MAX_POINTS = 50_000
_SHOWN = 4  # findings in a refusal before "and N more"
_EDGE = 1e-6  # grid indices: rounding at the grid's outer half cell


@dataclass(frozen=True)
class FieldValues:
    """One field and level of an input: (time, point) values at its times."""

    name: str
    level: int
    times: np.ndarray  # (T,) datetime64[s]
    values: np.ndarray  # (T, P)


@dataclass(frozen=True)
class InputValues:
    """A sample of an input's fields at geographic points."""

    lats: np.ndarray  # (P,) degrees
    lons: np.ndarray
    fields: tuple[FieldValues, ...]
    grid: LatLonGrid | None = None  # the input's own grid, where the model is asked on it
    whole: bool = True  # False: only the part inside the training grid is used (downscaling)


@dataclass(frozen=True)
class Reference:
    """What the checkpoint was trained on: its statistics' months and levels and, while it is
    at hand, the training store (its grid and per-point monthly statistics)."""

    months: tuple[int, ...]  # YYYYMM
    normalisation: Mapping[str, Any]  # the checkpoint's, per field
    store: Store | None
    _local: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict, compare=False
    )

    @classmethod
    def of(cls, trained: TrainedModel, statistics_store: Path | None = None) -> Reference:
        """The checkpoint's; `statistics_store` replaces its training store (--stats-store)."""
        saved = trained.normalisation.values()
        months = sorted({int(m) for entry in saved for m in entry.get("months", [])})
        return cls(
            tuple(months), trained.normalisation, _open(statistics_store or trained.training_store)
        )

    def findings(self, sample: InputValues) -> list[str]:
        """What in the sample lies outside the checkpoint's experience, as sentences."""
        inside, rows, columns = self._positions(sample)
        times = np.concatenate([np.array([], "datetime64[s]"), *(f.times for f in sample.fields)])
        found = self._months(times) + self._region(sample, inside)
        for values in sample.fields:
            found += self._values(values, inside, rows, columns)
        return found

    def _positions(self, sample: InputValues) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Which points lie on the training grid, and the row and column nearest each."""
        if self.store is None:
            zeros = np.zeros(len(sample.lats), dtype=int)
            return np.ones(len(sample.lats), dtype=bool), zeros, zeros
        grid = self.store.grid
        rows, columns = grid_position(grid, sample.lats, sample.lons)
        inside = (np.abs(rows - (grid.nlat - 1) / 2) <= grid.nlat / 2 + _EDGE) & (
            np.abs(columns - (grid.nlon - 1) / 2) <= grid.nlon / 2 + _EDGE
        )
        nearest_rows = np.clip(np.rint(rows), 0, grid.nlat - 1).astype(int)
        return inside, nearest_rows, np.clip(np.rint(columns), 0, grid.nlon - 1).astype(int)

    def _months(self, times: np.ndarray) -> list[str]:
        known = {m % 100 for m in self.months}
        strange = [int(m) for m in np.unique(months_of(times)) if int(m) % 100 not in known]
        if not self.months or not strange:
            return []
        held = ", ".join(calendar.month_name[m] for m in sorted(known))
        named = ", ".join(_named_month(m) for m in strange)
        return [
            f"month {named}: the checkpoint's statistics hold only {held} "
            f"({_month(self.months[0])} .. {_month(self.months[-1])})"
        ]

    def _region(self, sample: InputValues, inside: np.ndarray) -> list[str]:
        if self.store is None:
            return []
        grid, found = self.store.grid, []
        outside = 1.0 - float(inside.mean()) if inside.size else 0.0
        if sample.whole and outside > OUTSIDE_LIMIT:
            found.append(
                f"region: {outside:.0%} of the input's points lie outside the checkpoint's grid "
                f"({grid.describe()})"
            )
        if sample.grid is not None and not _same_spacing(sample.grid, grid):
            found.append(
                f"grid spacing: the input's {_spacing(sample.grid)}, the checkpoint's "
                f"{_spacing(grid)}"
            )
        return found

    def _values(
        self, values: FieldValues, inside: np.ndarray, rows: np.ndarray, columns: np.ndarray
    ) -> list[str]:
        if not inside.any():
            return []
        months = months_of(values.times)
        normalised = []
        for month in np.unique(months):
            mean, std = self._statistics(values.name, values.level, int(month))
            if mean.ndim:  # per grid point
                mean, std = mean[rows[inside], columns[inside]], std[rows[inside], columns[inside]]
            x = values.values[months == month][:, inside]
            normalised.append(np.clip((x - mean) / np.maximum(std, MIN_STD), -CLIP, CLIP))
        z = np.concatenate(normalised, axis=None)
        if np.isnan(z).all():
            return []
        mean_z, spread = float(np.nanmean(z)), float(np.nanstd(z))
        problems = []
        if abs(mean_z) > MEAN_LIMIT:
            problems.append(f"mean {mean_z:+.1f} sigma from the training mean (limit 5)")
        if spread > SPREAD_LIMIT:
            problems.append(f"spread {spread:.1f} x the training spread (limit 5)")
        if not problems:
            return []
        return [f"{values.name} level {values.level}: {', '.join(problems)}"]

    def _statistics(self, name: str, level: int, yyyymm: int) -> tuple[np.ndarray, np.ndarray]:
        """The mean and standard deviation the model normalises the field with: the training
        store's per grid point in the month (or the nearest month held) for a locally normalised
        field, else (or where that store is gone) the checkpoint's for the level."""
        saved = self.normalisation.get(name, {})
        store = self.store if saved.get("kind", "local") == "local" else None
        arrays = store.field(name) if store is not None and name in store.fields else None
        levels = [] if arrays is None else [int(v) for v in arrays.levels]
        if arrays is None or level not in levels or len(arrays.months) == 0:
            index = [int(v) for v in saved["levels"]].index(level)
            return np.asarray(saved["global_mean"][index]), np.asarray(saved["global_std"][index])
        month = nearest_month(arrays.months, yyyymm)
        if (name, month) not in self._local:
            self._local[(name, month)] = arrays.local_norm(month)
        mean, std = self._local[(name, month)]
        return mean[levels.index(level)], std[levels.index(level)]


def accept(findings: Sequence[str], allow: bool, what: str) -> tuple[str, ...]:
    """The findings, if the user allows unfamiliar input; else InputDataError in one line."""
    if findings and not allow:
        shown = "; ".join(findings[:_SHOWN])
        more = f"; and {len(findings) - _SHOWN} more" if len(findings) > _SHOWN else ""
        raise InputDataError(
            f"{what}: outside the checkpoint's experience: {shown}{more} "
            "(--allow-unfamiliar processes it anyway, with a warning)"
        )
    return tuple(findings)


def check_stores(
    trained: TrainedModel,
    stores: Sequence[Store],
    first: datetime,
    last: datetime,
    statistics_store: Path | None = None,
    allow: bool = False,
    whole: bool = True,
) -> tuple[str, ...]:
    """`accept` the findings on input stores from `first` (and the neighbourhood before it, which
    the model is shown) to `last`; `whole` False where only the part on the model's grid is
    used."""
    reference = Reference.of(trained, statistics_store)
    fields = {f.name: f.levels for f in trained.config.fields}
    window = trained.extent[0]
    found: list[str] = []
    for store in stores:
        sample = store_values(store, fields, first, last, window, whole)
        found += reference.findings(sample)
    paths = ", ".join(str(store.path) for store in stores)
    return accept(list(dict.fromkeys(found)), allow, paths)


def check_grib(
    trained: TrainedModel,
    source: Path,
    grid_store: Store,
    statistics_store: Path | None = None,
    allow: bool = False,
    allow_implausible: bool = False,
) -> tuple[str, ...]:
    """`accept` the findings on a GRIB file that `correct` or `bias-correct` would read;
    `grid_store` has the checkpoint's grid and fields (their level types). An implausible value
    is refused first, as `correct_input.select` refuses it, unless `allow_implausible`."""
    reference = Reference.of(trained, statistics_store)
    sample = grib_values(trained, source, grid_store, allow_implausible)
    return accept(reference.findings(sample), allow, str(source))


def store_values(
    store: Store,
    fields: Mapping[str, Sequence[int]],
    first: datetime,
    last: datetime,
    window: int = 1,
    whole: bool = True,
) -> InputValues:
    """A sample of the store's fields from `window - 1` time steps before `first` to `last`."""
    grid = store.grid
    stride = max(1, math.ceil(math.sqrt(grid.nlat * grid.nlon / MAX_POINTS)))
    lats, lons = (a[::stride, ::stride].ravel() for a in grid.geographic())
    sampled = []
    for name, levels in fields.items():
        if name not in store.fields:
            continue  # the product itself names a missing field
        arrays = store.field(name)
        held = [int(v) for v in arrays.levels]
        before = (window - 1) * (arrays.time_step or np.timedelta64(0, "s"))
        start, stop = _datetime64(first) - before, _datetime64(last)
        index = _spread_out(np.flatnonzero((arrays.times >= start) & (arrays.times <= stop)))
        if len(index) == 0:
            continue  # the product itself names the times missing
        data = arrays.fast()
        for level in (lv for lv in levels if lv in held):
            reads = [data[int(t), held.index(level), ::stride, ::stride] for t in index]
            values = np.array([r.read().result().ravel() for r in reads]).reshape(len(index), -1)
            sampled.append(FieldValues(name, level, arrays.times[index], values))
    return InputValues(lats, lons, tuple(sampled), grid if whole else None, whole)


def grib_values(
    trained: TrainedModel, source: Path, grid_store: Store, allow_implausible: bool = False
) -> InputValues:
    """A sample of the checkpoint's fields in a GRIB file, on the file's points."""
    needs = {}
    for config in trained.config.fields:
        if config.name not in grid_store.fields:
            raise StoreError(
                f"{grid_store.path}: no field {config.name!r}: is this the checkpoint's store?"
            )
        needs[config.name] = Need(
            grid_store.field(config.name).meta.level_type, tuple(config.levels)
        )
    selection = select(source, scan_headers(source), needs, allow_implausible=allow_implausible)
    stride = max(1, math.ceil(len(selection.points.lats) / MAX_POINTS))
    times = [selection.times[int(i)] for i in _spread_out(np.arange(len(selection.times)))]

    def read(name: str, level: int) -> np.ndarray:
        return np.array(
            [read_values(source, selection.message(name, level, t))[::stride] for t in times]
        )

    sampled = tuple(
        FieldValues(name, level, np.array(times, dtype="datetime64[s]"), read(name, level))
        for name, need in needs.items()
        for level in need.levels
    )
    points = selection.points
    return InputValues(points.lats[::stride], points.lons[::stride], sampled)


def _spread_out(index: np.ndarray) -> np.ndarray:
    """At most MAX_TIMES of the indices, evenly spread from the first to the last."""
    if len(index) <= MAX_TIMES:
        return index
    return index[np.unique(np.linspace(0, len(index) - 1, MAX_TIMES).round().astype(int))]


def _open(path: Path) -> Store | None:
    """The store if it is there (a checkpoint may travel without its training store)."""
    try:
        return Store.open(path)
    except StoreError:
        return None


def _datetime64(time: datetime) -> np.datetime64:
    return np.datetime64(time.replace(tzinfo=None), "s")


def _month(yyyymm: int) -> str:
    return f"{yyyymm // 100}-{yyyymm % 100:02d}"


def _named_month(yyyymm: int) -> str:
    return f"{_month(yyyymm)} ({calendar.month_name[yyyymm % 100]})"


def _same_spacing(a: LatLonGrid, b: LatLonGrid) -> bool:
    return bool(
        np.isclose(abs(a.lat_step), abs(b.lat_step), rtol=0.01)
        and np.isclose(abs(a.lon_step), abs(b.lon_step), rtol=0.01)
    )


def _spacing(grid: LatLonGrid) -> str:
    return f"{abs(grid.lat_step):g} x {abs(grid.lon_step):g} deg"
