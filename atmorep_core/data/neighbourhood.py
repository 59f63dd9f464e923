"""Index geometry of neighbourhoods on the store's grid, and reading one window of an array.

A window is a box of grid points: `time` consecutive steps of the sampler's common time axis,
`lat` rows fully inside the grid (never across a pole) and `lon` columns that wrap around the
date line on grids that are global in longitude. Reads touch only the chunks inside the box: a
window that wraps is read as two slices and joined.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
import zarr
from zarr.storage import LocalStore

from atmorep_core.data.normalize import MIN_STD
from atmorep_core.grid import LatLonGrid
from atmorep_core.io.store import FieldArrays
from atmorep_core.io.tensorstore_arrays import tensorstore_spec
from atmorep_core.rotated_grid import unrotate

Extent = tuple[int, int, int]  # points in (time, lat, lon)
# The alpha vector of a token, in this order (documented in the sampler module).
ALPHA_KEYS = ("year", "day_of_year", "hour", "level", "lat", "lon", "resolution")


@dataclass(frozen=True)
class SpatialRange:
    """How many window positions fit on the grid, per axis, for one window extent."""

    lat_starts: int  # lat_start in [0, lat_starts)
    lon_starts: int  # lon_start in [0, lon_starts); all nlon columns on global grids
    wraps: bool  # lon_start is taken modulo nlon and windows may cross the date line


def spatial_range(grid: LatLonGrid, lat_points: int, lon_points: int) -> SpatialRange:
    """Window positions on `grid`; ValueError (with the numbers) when the window is too big."""
    nlat, nlon = grid.shape
    if lat_points > nlat:
        raise ValueError(f"{lat_points} latitudes do not fit on a grid of {nlat}")
    if lon_points > nlon:
        raise ValueError(f"{lon_points} longitudes do not fit on a grid of {nlon}")
    wraps = grid.is_global_in_lon
    lon_starts = nlon if wraps else nlon - lon_points + 1
    return SpatialRange(nlat - lat_points + 1, lon_starts, wraps)


def lon_pieces(lon_start: int, lon_points: int, nlon: int) -> list[slice]:
    """Column slices of a window starting at `lon_start` (already in [0, nlon)), west to east."""
    stop = lon_start + lon_points
    if stop <= nlon:
        return [slice(lon_start, stop)]
    return [slice(lon_start, nlon), slice(0, stop - nlon)]


@dataclass(frozen=True)
class TimeAxis:
    """The times all fields share, and each field's index of every shared time."""

    times: np.ndarray  # (n,) datetime64[s], increasing
    field_index: tuple[np.ndarray, ...]  # per field, (n,) int64 index into its own time axis

    @classmethod
    def intersect(cls, per_field: Sequence[np.ndarray]) -> TimeAxis:
        common = per_field[0]
        for times in per_field[1:]:
            common = np.intersect1d(common, times)
        common = np.unique(common)
        index = tuple(np.searchsorted(times, common).astype(np.int64) for times in per_field)
        return cls(common, index)

    def step(self) -> np.timedelta64 | None:
        """The smallest spacing of the shared times; None with fewer than two of them."""
        if len(self.times) < 2:
            return None
        return np.diff(self.times).min()

    def window_starts(self, length: int) -> np.ndarray:
        """Indices where `length` shared times follow at a regular step, contiguous in every field.

        Gaps in the data and fields on different time steps leave no window across them, so a
        read is always one slice per field.
        """
        n = len(self.times) - length + 1
        if n <= 0:
            return np.zeros(0, dtype=np.int64)
        if length == 1:
            return np.arange(n, dtype=np.int64)
        step = self.step()
        seconds = self.times.astype("datetime64[s]").astype(np.int64)
        span = seconds[length - 1 :] - seconds[:n]
        ok = span == (length - 1) * int(step / np.timedelta64(1, "s"))  # type: ignore[operator]
        for index in self.field_index:
            ok &= index[length - 1 :] - index[:n] == length - 1
        return np.flatnonzero(ok).astype(np.int64)


def months_of(times: np.ndarray) -> np.ndarray:
    """YYYYMM of each datetime64, as the store's statistics name months."""
    months = times.astype("datetime64[M]").astype(np.int64)  # months since 1970-01
    return (1970 + months // 12) * 100 + months % 12 + 1


class WindowReader(Protocol):
    """Reads one (time, level, lat, lon) box of a field's data array into memory."""

    def read(
        self, time: slice, levels: np.ndarray, lat: slice, lon: Sequence[slice]
    ) -> np.ndarray: ...


class ZarrReader:
    """Window reads with zarr-python: one orthogonal selection per longitude piece."""

    def __init__(self, array: zarr.Array) -> None:
        self.array = array

    def read(self, time: slice, levels: np.ndarray, lat: slice, lon: Sequence[slice]) -> np.ndarray:
        level_sel = as_slice(levels)
        parts = [
            np.asarray(self.array.get_orthogonal_selection((time, level_sel, lat, piece)))
            for piece in lon
        ]  # each (time, level, lat, lon piece)
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)


# The process that started tensorstore's thread pools; its forked children cannot use them.
_tensorstore_pid: int | None = None


class TensorstoreReader:
    """Window reads with tensorstore, which decodes a window's chunks in parallel in C++.

    About 60 times faster than zarr-python on the sharded 0.25-degree layout (BENCHMARKS.md).
    Tensorstore's thread pools do not survive a fork: a process that has read with it must start
    its DataLoader workers with "spawn" or "forkserver" (`dataset.make_loader` does), and a
    forked child is refused with that advice instead of aborting.
    """

    def __init__(self, array: zarr.Array) -> None:
        location = array.store_path
        if not isinstance(location.store, LocalStore):
            raise ValueError("tensorstore reads only stores on a local file system")
        self.spec = tensorstore_spec(Path(location.store.root) / location.path)
        self._opened: tuple[int, Any] | None = None

    def _array(self) -> Any:
        global _tensorstore_pid
        if self._opened is None or self._opened[0] != os.getpid():
            if _tensorstore_pid not in (None, os.getpid()):
                raise RuntimeError(
                    "tensorstore was used before this process was forked and would abort here; "
                    "start DataLoader workers with multiprocessing_context='spawn' or "
                    "'forkserver' (atmorep_core.data.dataset.make_loader), or use reader 'zarr'"
                )
            import tensorstore

            _tensorstore_pid = os.getpid()
            self._opened = (os.getpid(), tensorstore.open(self.spec, read=True).result())
        return self._opened[1]

    def __getstate__(self) -> dict[str, Any]:
        return {"spec": self.spec, "_opened": None}  # the handle stays in its process

    def read(self, time: slice, levels: np.ndarray, lat: slice, lon: Sequence[slice]) -> np.ndarray:
        array = self._array()
        level_sel = as_slice(levels)
        # Start every piece's read before waiting, so both sides of the date line load together.
        pending = [array.oindex[time, level_sel, lat, piece].read() for piece in lon]
        parts = [np.asarray(p.result()) for p in pending]  # each (time, level, lat, lon piece)
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)


ReaderKind = Literal["auto", "zarr", "tensorstore"]


def make_reader(array: zarr.Array, kind: ReaderKind) -> WindowReader:
    """The reader asked for; "auto": tensorstore when installed and able to read the store."""
    if kind == "zarr":
        return ZarrReader(array)
    if kind == "auto":
        try:
            import tensorstore  # noqa: F401

            return TensorstoreReader(array)
        except (ImportError, ValueError):
            return ZarrReader(array)
    return TensorstoreReader(array)


def as_slice(index: np.ndarray) -> slice | np.ndarray:
    """A run of consecutive indices as a slice (cheaper for zarr), anything else unchanged."""
    if len(index) and np.array_equal(index, np.arange(index[0], index[0] + len(index))):
        return slice(int(index[0]), int(index[0]) + len(index))
    return index


def token_alpha(
    times: np.ndarray,
    levels: Sequence[int],
    lats: np.ndarray,
    lons: np.ndarray,
    token_size: tuple[int, int, int],
    resolution: float,
    wrap_lon: bool,
    south_pole: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Alpha of every token, (level, n_t, n_lat, n_lon, 7) float32, in the order of ALPHA_KEYS.

    times (time,) datetime64, lats (lat,) and lons (lon,) degrees: the window's points; with
    `south_pole` they are rotated coordinates of a grid with that southern pole, and the alpha
    holds the geographic latitude and longitude (-180 .. 180) of each token's centre.
    """
    t, y, x = token_size
    seconds = times.astype("datetime64[s]").astype(np.int64).reshape(-1, t)  # (n_t, t)
    centre = (seconds[:, 0] + seconds[:, -1]) / 2.0  # (n_t,) mid-token, fractional seconds
    whole = np.floor(centre).astype(np.int64).astype("datetime64[s]")
    day = whole.astype("datetime64[D]")
    year = whole.astype("datetime64[Y]")
    day_of_year = (day - year.astype("datetime64[D]")).astype(np.int64) + 1
    hour = (centre - day.astype("datetime64[s]").astype(np.int64)) / 3600.0
    lat = lats.reshape(-1, y)[:, [0, -1]].mean(axis=1)  # (n_lat,)
    lon = lons.reshape(-1, x)[:, [0, -1]].mean(axis=1)  # (n_lon,)
    if wrap_lon:
        lon = lon % 360.0
    n_t, n_lat, n_lon = len(centre), len(lat), len(lon)
    if south_pole is not None:  # the centres' positions depend on both row and column
        rotated_lat, rotated_lon = np.meshgrid(lat, lon, indexing="ij")  # (n_lat, n_lon)
        lat, lon = unrotate(rotated_lat, rotated_lon, south_pole[0], south_pole[1])
    shape = (len(levels), n_t, n_lat, n_lon)
    columns = [
        (year.astype(np.int64) + 1970).reshape(1, n_t, 1, 1),
        day_of_year.reshape(1, n_t, 1, 1),
        hour.reshape(1, n_t, 1, 1),
        np.asarray(levels, dtype=np.float64).reshape(-1, 1, 1, 1),
        lat.reshape(1, 1, n_lat, -1),  # -1: 1, or n_lon on a rotated grid
        lon.reshape(1, 1, -1, n_lon),
        np.full((1, 1, 1, 1), resolution),
    ]
    stacked = np.stack([np.broadcast_to(c, shape) for c in columns], axis=-1)  # (*shape, 7)
    return torch.from_numpy(stacked.astype(np.float32))


class Normaliser(Protocol):
    """Statistics of a window: mean and std broadcastable to its (time, level, lat, lon)."""

    def mean_std(
        self, months: np.ndarray, lat: slice, lon: Sequence[slice]
    ) -> tuple[np.ndarray, np.ndarray]: ...


class GlobalNorm:
    """Per-level statistics, (1, level, 1, 1) so they broadcast over a (time, level, lat, lon)."""

    def __init__(self, arrays: FieldArrays, level_index: np.ndarray) -> None:
        mean, std = arrays.global_norm()
        shape = (1, len(level_index), 1, 1)
        self.mean = mean[level_index].astype(np.float32).reshape(shape)
        self.std = np.maximum(std[level_index], MIN_STD).astype(np.float32).reshape(shape)

    def mean_std(
        self, months: np.ndarray, lat: slice, lon: Sequence[slice]
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.mean, self.std


class LocalNorm:
    """Per grid point and month statistics, read for just the window (they are chunked as the
    data is), so a sample costs a few percent more bytes instead of a whole month's grid.
    Fields with missing values count per point: the month's steps less the missing ones."""

    def __init__(self, arrays: FieldArrays, level_index: np.ndarray, kind: ReaderKind) -> None:
        self.level_index = level_index
        self.rows = {int(m): row for row, m in enumerate(arrays.months)}
        self.counts = arrays.read("stats/local_count")
        self.mean_reader = make_reader(arrays.array("stats/local_mean"), kind)
        self.m2_reader = make_reader(arrays.array("stats/local_m2"), kind)
        self.missing_reader = (
            make_reader(arrays.array("stats/local_missing"), kind)
            if arrays.has_missing_counts
            else None
        )

    def mean_std(
        self, months: np.ndarray, lat: slice, lon: Sequence[slice]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(time, level, lat, lon) statistics: each time step takes those of its own month."""
        unique, which = np.unique(months, return_inverse=True)
        means, stds = [], []
        for month in unique:
            row = self.rows[int(month)]
            rows = slice(row, row + 1)
            mean = self.mean_reader.read(rows, self.level_index, lat, lon)  # (1, level, lat, lon)
            m2 = self.m2_reader.read(rows, self.level_index, lat, lon)  # (1, level, lat, lon)
            means.append(mean.astype(np.float32))
            count: float | np.ndarray = float(self.counts[row])
            if self.missing_reader is not None:
                count = count - self.missing_reader.read(rows, self.level_index, lat, lon)
            stds.append(np.maximum(np.sqrt(m2 / np.maximum(count, 1.0)), MIN_STD))
        mean, std = np.concatenate(means), np.concatenate(stds).astype(np.float32)
        if len(unique) == 1:
            return mean, std  # broadcasts over time without a copy per step
        return mean[which], std[which]  # (time, level, lat, lon)
