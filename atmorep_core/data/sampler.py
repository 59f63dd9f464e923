"""The neighbourhood sampler: normalised tokens of space-time neighbourhoods, for training and
inference alike.

Every field of a sample covers the same box of grid points (the same centre and time window),
each cut into its own tokens. Training draws boxes by Monte Carlo as the original AtmoRep: first
a month, then a time start within it and a spatial position; inference asks for a given one with
`NeighbourhoodSampler.read`; `dataset.NeighbourhoodDataset` turns a seeded sequence of positions
into batches for training. Arrays are read with tensorstore when it is installed
(about 15 times the samples per second of zarr-python, BENCHMARKS.md), else with zarr-python.

Fields with missing values (NaN in the store, e.g. precipitation from a bitmap): drawn positions
avoid every point missing at any time (`valid_windows`), and `read` refuses a window holding NaN
with an InputDataError naming the field and time, so NaN never reaches the model.

The alpha of a token, its conditioning, is a vector of `ALPHA_KEYS` in this order:
    year, day of year (1 = 1 January), hour (UTC, fractional for even token lengths),
    level, lat and lon of the token's centre (degrees; lon in [0, 360) on global grids),
    grid resolution (degrees).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from atmorep_core.config_errors import validate_section
from atmorep_core.data.batch import Sample, SampleMeta
from atmorep_core.data.neighbourhood import (
    Extent,
    GlobalNorm,
    LocalNorm,
    Normaliser,
    ReaderKind,
    TimeAxis,
    WindowReader,
    lon_pieces,
    make_reader,
    months_of,
    spatial_range,
    token_alpha,
)
from atmorep_core.data.valid_windows import valid_starts
from atmorep_core.errors import ConfigError, InputDataError
from atmorep_core.io.store import FieldArrays, Store
from atmorep_core.model.tokens import tokenize

__all__ = ["FieldConfig", "NeighbourhoodSampler", "SamplerConfig"]


class FieldConfig(BaseModel):
    """How one field is cut into tokens and normalised."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    """Field name in the store."""
    levels: tuple[int, ...] | None = None
    """Levels to use, a subset of the store's; None: all of them."""
    token_count: tuple[PositiveInt, PositiveInt, PositiveInt] = (12, 6, 12)
    """Tokens per neighbourhood in (time, lat, lon)."""
    token_size: tuple[PositiveInt, PositiveInt, PositiveInt] = (3, 9, 9)
    """Grid points per token in (time, lat, lon)."""
    normalisation: Literal["local", "global"] = "local"
    """local: per grid point and month (AtmoRep's default); global: per level."""

    @property
    def extent(self) -> Extent:
        """Grid points the neighbourhood covers in (time, lat, lon)."""
        t, y, x = (c * s for c, s in zip(self.token_count, self.token_size, strict=True))
        return t, y, x


class SamplerConfig(BaseModel):
    """Fields of a sample and how they are read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fields: tuple[FieldConfig, ...] = Field(min_length=1)
    """The fields of every sample; all must cover the same points (token counts x sizes)."""
    reader: ReaderKind = "auto"
    """Array reader: tensorstore (much faster) when installed, else zarr-python; same values."""

    @model_validator(mode="after")
    def _fields_agree(self) -> SamplerConfig:
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"fields: a field is listed twice ({', '.join(names)})")
        first = self.fields[0]
        for i, other in enumerate(self.fields[1:], start=1):
            if other.extent != first.extent:
                raise ValueError(
                    f"fields[{i}].token_count: {other.name} covers {_points(other.extent)} "
                    f"points but {first.name} covers {_points(first.extent)}; token counts x "
                    "sizes must give the same neighbourhood for every field"
                )
        return self

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> SamplerConfig:
        """Validate a recipe's sampler section; a ConfigError names the first bad key."""
        return validate_section(cls, data, "sampler.")


def _points(extent: Extent) -> str:
    return " x ".join(str(n) for n in extent)


class _FieldSource:
    """One configured field: its levels, reader and normaliser.

    `norm` given: normalise with it instead of the store's own statistics (a target store's
    field is normalised as the input it is paired with, so the model predicts it in the same units
    it is shown its input)."""

    def __init__(
        self,
        store: Store,
        config: FieldConfig,
        key: str,
        reader: ReaderKind,
        norm: Normaliser | None = None,
    ) -> None:
        self.config = config
        if config.name not in store.fields:
            raise ConfigError(f"{key}.name: no field {config.name!r} in the store {store.fields}")
        arrays = store.field(config.name)
        self.meta = arrays.meta
        self.times: np.ndarray = arrays.times
        self.level_index = _level_index(arrays.levels, config.levels, key)
        self.levels = tuple(int(v) for v in arrays.levels[self.level_index])
        try:
            self.reader: WindowReader = make_reader(arrays.data, reader)
        except (ImportError, ValueError) as error:
            raise ConfigError(f"reader: tensorstore cannot read this store ({error})") from None
        self.may_miss = arrays.has_missing_counts
        missing = arrays.missing_mask(self.level_index) if self.may_miss else None
        self.missing: np.ndarray | None = None
        if missing is not None:
            self.missing = np.asarray(missing.any(axis=0))  # (lat, lon) over the levels used
        self.missing_points = 0 if self.missing is None else int(self.missing.sum())
        self.norm: Normaliser
        if norm is not None:
            self.norm = norm
        elif config.normalisation == "global":
            self.norm = GlobalNorm(arrays, self.level_index)
        else:
            _check_months(arrays, key)
            self.norm = LocalNorm(arrays, self.level_index, reader)


def _level_index(available: np.ndarray, wanted: tuple[int, ...] | None, key: str) -> np.ndarray:
    if wanted is None:
        return np.arange(len(available))
    missing = sorted(set(wanted) - {int(v) for v in available})
    if missing:
        raise ConfigError(
            f"{key}.levels: {missing} not in the store (has {[int(v) for v in available]})"
        )
    lookup = {int(v): i for i, v in enumerate(available)}
    return np.array([lookup[v] for v in wanted], dtype=np.int64)


def _check_months(arrays: FieldArrays, key: str) -> None:
    have = {int(m) for m in arrays.months}
    missing = sorted({int(m) for m in months_of(arrays.times)} - have)
    if missing:
        raise ConfigError(
            f"{key}.normalisation: local statistics missing for months {missing}; "
            "use 'global' or re-run prepare"
        )


class NeighbourhoodSampler:
    """Reads normalised, tokenized neighbourhoods of the configured fields from a store."""

    def __init__(
        self,
        store: Store,
        config: SamplerConfig,
        window: tuple[np.datetime64, np.datetime64] | None = None,
        target: Store | None = None,
    ) -> None:
        """`window`: first and last time (inclusive) a neighbourhood may hold, e.g. to keep
        training and validation data apart; None: all times. `target`: a store of the same fields
        on the same grid whose values each sample also carries as its `targets` (paired training,
        e.g. bias correction: model output in `store`, observations in `target`)."""
        self.config, self.grid = config, store.grid
        self.extent = config.fields[0].extent
        self._sources = [
            _FieldSource(store, f, f"fields[{i}]", config.reader)
            for i, f in enumerate(config.fields)
        ]
        self._targets = [] if target is None else self._target_sources(store, target)
        try:
            self.space = spatial_range(self.grid, self.extent[1], self.extent[2])
        except ValueError as error:
            raise ConfigError(f"fields[0].token_count: neighbourhood {error}") from None
        self.time_axis = TimeAxis.intersect([s.times for s in self._sources + self._targets])
        self.starts = self.time_axis.window_starts(self.extent[0])
        if window is not None:
            self.starts = self._inside(self.starts, window)
        if len(self.starts) == 0:
            raise ConfigError(
                f"fields[0].token_count: no window of {self.extent[0]} consecutive time steps "
                f"fits the {len(self.time_axis.times)} times all fields share"
                + ("" if window is None else f" between {window[0]} and {window[1]}")
            )
        # Monte Carlo sampling picks a month first, then a start inside it.
        start_months = months_of(self.time_axis.times[self.starts])
        self.months, self._month_of_start = np.unique(start_months, return_inverse=True)
        self._valid = self._valid_places()

    def _target_sources(self, store: Store, target: Store) -> list[_FieldSource]:
        """The target store's fields, checked against the input's and normalised as theirs."""
        if not target.grid.matches(store.grid):
            raise ConfigError(
                f"data.target: {target.path} is on another grid ({target.grid.describe()}) "
                f"than the store ({store.grid.describe()}); prepare both on one grid"
            )
        sources = []
        for i, own in enumerate(self._sources):
            name = own.config.name
            paired = _FieldSource(
                target, own.config, f"data.target: fields[{i}]", self.config.reader, own.norm
            )
            for key in ("units", "accumulation_s"):
                mine, theirs = getattr(own.meta, key), getattr(paired.meta, key)
                if mine != theirs:
                    raise ConfigError(
                        f"data.target: {name} has {key} {theirs!r} in {target.path} but "
                        f"{mine!r} in the store; targets must be in the input's units"
                    )
            sources.append(paired)
        return sources

    def _valid_places(self) -> np.ndarray | None:
        """(n, 2) (lat_start, lon_start) of windows free of missing points; None: all are."""
        masks = [s.missing for s in self._sources + self._targets if s.missing is not None]
        if not masks:
            return None
        valid = valid_starts(np.logical_or.reduce(masks), *self.extent[1:], self.space)
        if len(valid) == 0:
            gaps = ", ".join(
                f"{s.config.name} ({s.missing_points} of {self.grid.nlat * self.grid.nlon} "
                "points missing at some time)"
                for s in self._sources + self._targets
                if s.missing is not None
            )
            raise ConfigError(
                f"fields[0].token_count: no neighbourhood of {self.extent[1]} x "
                f"{self.extent[2]} grid points avoids the missing values of {gaps}; "
                "use smaller neighbourhoods"
            )
        return valid

    def _inside(
        self, starts: np.ndarray, window: tuple[np.datetime64, np.datetime64]
    ) -> np.ndarray:
        first, last = np.asarray(window, dtype="datetime64[s]")
        times = self.time_axis.times
        ends = times[starts + self.extent[0] - 1]
        return starts[(times[starts] >= first) & (ends <= last)]

    @property
    def times(self) -> np.ndarray:
        """The time axis all fields share; `time_index` values index it."""
        return self.time_axis.times

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.config.fields)

    def draw_positions(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """(n, 3) int64 (time_index, lat_start, lon_start): a month, a start in it, a place."""
        month = rng.integers(len(self.months), size=n)
        time_index = np.empty(n, dtype=np.int64)
        for i, m in enumerate(month):
            candidates = self.starts[self._month_of_start == m]
            time_index[i] = candidates[rng.integers(len(candidates))]
        if self._valid is not None:  # only places whose box never holds a missing value
            lat, lon = self._valid[rng.integers(len(self._valid), size=n)].T
            return np.stack([time_index, lat, lon], axis=1)
        lat = rng.integers(self.space.lat_starts, size=n)
        lon = rng.integers(self.space.lon_starts, size=n)
        return np.stack([time_index, lat, lon], axis=1)

    def read(
        self,
        time: int | np.integer | np.datetime64 | datetime,
        lat_start: int,
        lon_start: int,
        index: int | None = None,
    ) -> Sample:
        """The neighbourhood starting at a time (index into `times`, or a datetime) and grid point.

        lon_start may be any integer on grids global in longitude (taken modulo nlon).
        """
        t0 = self._time_index(time)
        lat, lons = self._spatial_window(lat_start, lon_start)
        times = self.times[t0 : t0 + self.extent[0]]
        # Targets follow the inputs in the time axis' fields (`_target_sources`).
        own_start = [int(index[t0]) for index in self.time_axis.field_index]
        inputs, targets = own_start[: len(self._sources)], own_start[len(self._sources) :]
        tokens = {
            s.config.name: self._read_tokens(s, own, times, lat, lons)
            for s, own in zip(self._sources, inputs, strict=True)
        }
        alpha = {s.config.name: self._alpha(s, times, lat, lons) for s in self._sources}
        paired = {
            s.config.name: self._read_tokens(s, own, times, lat, lons)
            for s, own in zip(self._targets, targets, strict=True)
        }
        meta = SampleMeta(
            time_start=times[0],
            time_index=t0,
            lat_start=lat.start,
            lon_start=lons[0].start,
            fields=self.field_names,
            levels=tuple(s.levels for s in self._sources),
            index=index,
        )
        return Sample(tokens, alpha, meta, paired or None)

    def statistics(
        self,
        name: str,
        time: int | np.integer | np.datetime64 | datetime,
        lat_start: int,
        lon_start: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std a window of one field was normalised with, to undo it at inference.

        Both broadcast to the window's (level, time, lat, lon) points.
        """
        source = self._sources[self.field_names.index(name)]
        t0 = self._time_index(time)
        lat, lons = self._spatial_window(lat_start, lon_start)
        mean, std = source.norm.mean_std(months_of(self.times[t0 : t0 + self.extent[0]]), lat, lons)
        return mean.swapaxes(0, 1), std.swapaxes(0, 1)  # (level, time or 1, lat or 1, lon or 1)

    def _read_tokens(
        self, source: _FieldSource, own: int, times: np.ndarray, lat: slice, lons: list[slice]
    ) -> torch.Tensor:
        """Normalised tokens of one field; `own` is the window's first index in its time axis."""
        raw = source.reader.read(slice(own, own + len(times)), source.level_index, lat, lons)
        if source.may_miss and np.isnan(raw).any():
            first = times[int(np.flatnonzero(np.isnan(raw).reshape(len(times), -1).any(1))[0])]
            raise InputDataError(
                f"{source.config.name}: missing values (NaN) in the neighbourhood at {first} "
                f"(rows from {lat.start}, columns from {lons[0].start}); they never enter the model"
            )
        mean, std = source.norm.mean_std(months_of(times), lat, lons)
        values = (raw - mean) / std  # (time, level, lat, lon)
        points = torch.from_numpy(np.ascontiguousarray(values.transpose(1, 0, 2, 3), np.float32))
        return tokenize(points, source.config.token_size)  # (level, n_t, n_lat, n_lon, t, y, x)

    def _alpha(
        self, source: _FieldSource, times: np.ndarray, lat: slice, lons: list[slice]
    ) -> torch.Tensor:
        lats, window_lons = self.grid.window_axes(lat.start, lons[0].start, self.extent[1:])
        return token_alpha(
            times,
            source.levels,
            lats,
            window_lons,
            source.config.token_size,
            self.grid.resolution_deg,
            self.space.wraps,
            south_pole=self.grid.south_pole,  # rotated grids: alpha holds geographic lat/lon
        )

    def _time_index(self, time: int | np.integer | np.datetime64 | datetime) -> int:
        if isinstance(time, int | np.integer):
            t0 = int(time)
        else:
            stamp = np.asarray(time, dtype="datetime64[s]")
            found = np.flatnonzero(self.times == stamp)
            if found.size == 0:
                raise ConfigError(f"time: {stamp} is not a time step all fields share")
            t0 = int(found[0])
        at = int(np.searchsorted(self.starts, t0))
        if at == len(self.starts) or self.starts[at] != t0:
            raise ConfigError(
                f"time: no window of {self.extent[0]} regular time steps starts at index {t0}"
            )
        return t0

    def _spatial_window(self, lat_start: int, lon_start: int) -> tuple[slice, list[slice]]:
        if not 0 <= lat_start < self.space.lat_starts:
            raise ConfigError(
                f"lat_start: {lat_start} outside [0, {self.space.lat_starts}) for "
                f"{self.extent[1]} rows"
            )
        nlon = self.grid.nlon
        if self.space.wraps:
            lon_start %= nlon
        elif not 0 <= lon_start < self.space.lon_starts:
            raise ConfigError(
                f"lon_start: {lon_start} outside [0, {self.space.lon_starts}) on a regional grid"
            )
        lat = slice(lat_start, lat_start + self.extent[1])
        return lat, lon_pieces(lon_start, self.extent[2], nlon)
