"""The training store: a local zarr v3 hierarchy with one group per field.

    STORE.zarr/                 attrs: format_version, grid, sources (ingested files + checksums),
                                committed_times (time steps of each field that readers see)
      lat, lon                  coordinates of the shared regular lat-lon grid (on a grid
                                regular in a rotated frame, grid type rotated_ll: the rotated
                                axes; `grid.LatLonGrid.geographic` gives each point's position)
      <field>/                  attrs: short_name, param_id, units, level_type, time_step_s, member,
                                accumulation_s (accumulated fields: seconds up to each valid time)
        data                    (time, level, lat, lon) float32, sharded for neighbourhood reads
        time                    (time,) int64 seconds since 1970-01-01 UTC, regular steps
        level                   (level,) int32
        stats/global_{count,mean,m2}   (level,) float64 running moments over all data
        stats/month                    (month,) int32 as YYYYMM
        stats/local_count              (month,) float64
        stats/local_{mean,m2}          (month, level, lat, lon) float64, per grid point and month
        stats/local_missing            (month, level, lat, lon) int32, fields allowing missing
                                       values only: time steps each point is NaN in the month

Moments are kept as count, mean and sum of squared deviations (m2) so that appending data merges
exactly; mean and std are derived on read. Fields that allow missing values (bitmaps, e.g. DWD
precipitation) hold NaN in `data` where the input had none; their statistics leave NaN out, so a
point's local count is local_count minus local_missing, and `FieldArrays.missing_mask` gives the
points missing at any time. Stores written before these arrays existed read as having none.

Readers see only committed data. An ingest extends the time axis before it writes the rows, so
the root attribute `committed_times` (written with `sources` as the ingest's last change, one
atomic file) says how many time steps of each field are committed, and a field not in it does
not exist for readers. While an ingest runs (or after it was killed, until the next `prepare`
rolls it back) its undo journal (`io.journal`) holds the committed root attributes and the
committed values of every statistics row it rewrites, and readers take them from there. Rows
below the committed extent are never changed in place: they are read from the store at any time.
A reader that needs more than is committed while an ingest runs gets StoreUpdatingError (retry).
Stores written before `committed_times` existed show their whole time axis.

A missing or corrupt `zarr.json` (root, field or array) is a StoreError naming it; paths are
resolved before they reach tensorstore, which refuses `..`. Plain xarray reads the store too
(dimension names, CF attributes, consolidated metadata: `io.store_metadata`).

zarr-python makes the hierarchy and handles the small arrays; the large ones are read and written
through tensorstore, which handles sharded arrays 20-30x faster (measured on a 0.25-degree grid:
writing 24 global hours 0.5 s against 9.6 s, reading a 36 h x 54 x 108 window 3 ms against 84 ms).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import tensorstore as ts
import zarr
from zarr.codecs import BloscCodec

from atmorep_core.errors import StoreError, StoreUpdatingError
from atmorep_core.grid import LatLonGrid
from atmorep_core.io.journal import Journal, Pending, stable_read
from atmorep_core.io.store_metadata import (
    add_axes,
    array_description,
    describe_field,
    write_root,
)
from atmorep_core.io.tensorstore_arrays import open_fast, short_message

FORMAT_VERSION = 1
# Inner chunks small enough that a neighbourhood of 36 h x 54 x 108 points reads little more than
# itself; shards group them into files of a few MB (24 h x 144 x 288 points).
INNER_CHUNK = (6, 1, 18, 18)
SHARD = (24, 1, 144, 288)
_COMPRESSOR = BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")
_EPOCH = np.datetime64("1970-01-01T00:00:00", "s")
_MISSING = "stats/local_missing"
_ARRAYS = (
    "data", "time", "level", "stats/global_count", "stats/global_mean", "stats/global_m2",
    "stats/month", "stats/local_count", "stats/local_mean", "stats/local_m2",
)  # fmt: skip
COMMITTED_TIMES = "committed_times"  # root attribute: {field: time steps readers see}
_T = TypeVar("_T")


@dataclass(frozen=True)
class FieldMeta:
    """What the store records about one field."""

    name: str
    short_name: str
    param_id: int
    units: str
    level_type: str
    member: str  # which ensemble member was kept: a number or "mean"
    accumulation_s: int | None = None  # accumulated fields: period length ending at valid time


class FieldArrays:
    """One field's arrays, read lazily; `times` and `levels` are loaded once.

    A reader's view (`journal` given) shows the committed time steps (`extent`) and the committed
    statistics; the writer's (`journal` None) everything, its own changes included."""

    def __init__(
        self,
        group: zarr.Group,
        folder: Path,
        extent: int | None = None,
        journal: Journal | None = None,
    ) -> None:
        self.group = group
        self.folder = folder  # the group's directory, for tensorstore
        self.name = str(group.basename)
        self.extent = extent  # committed time steps; None: the whole time axis
        self.journal = journal

    def array(self, path: str) -> zarr.Array:
        """One of the field's arrays by its path inside the group, e.g. "stats/month"."""
        with _metadata_errors(self.folder / path):
            found = self.group[path]
        if not isinstance(found, zarr.Array):
            raise StoreError(f"field {self.name}: {path} is not an array")
        return found

    def check_metadata(self) -> None:
        """StoreError naming the first of the field's arrays whose zarr.json is missing or
        corrupt, before a reader or an ingest meets it halfway."""
        for path in _ARRAYS:
            self.array(path)

    def read(self, path: str) -> np.ndarray:
        """One of the field's small arrays, whole, as committed."""
        return self._stable(lambda pending: self._read(path, pending))

    @cached_property
    def meta(self) -> FieldMeta:
        attrs: dict[str, Any] = dict(self.group.attrs)
        return FieldMeta(**{k: attrs[k] for k in FieldMeta.__dataclass_fields__ if k in attrs})

    @property
    def data(self) -> zarr.Array:
        return self.array("data")

    def fast(self, array: str = "data") -> ts.TensorStore:
        """A tensorstore view of one of the field's arrays, opened with its current shape."""
        return open_fast(self.folder / array)

    @cached_property
    def times(self) -> np.ndarray:
        seconds = self.read("time")
        return _EPOCH + seconds[: self.extent].astype("timedelta64[s]")

    @cached_property
    def levels(self) -> np.ndarray:
        return self.read("level")

    @property
    def time_step(self) -> np.timedelta64 | None:
        seconds = self.group.attrs.get("time_step_s")
        return None if seconds is None else np.timedelta64(int(str(seconds)), "s")

    @cached_property
    def months(self) -> np.ndarray:
        return self.read("stats/month")

    @property
    def has_missing_counts(self) -> bool:
        """Whether the field may hold NaN (its statistics count missing values per point)."""
        return self._stable(self._has_missing)

    def missing_mask(self, level_index: np.ndarray | None = None) -> np.ndarray | None:
        """(level, lat, lon) True where a point is missing at some time; None if never any."""
        return self._stable(lambda pending: self._missing_mask(level_index, pending))

    def ensure_missing_counts(self) -> None:
        """Add zero missing counts to a field made before they existed (it holds no NaN)."""
        if self.has_missing_counts:
            return
        like = self.array("stats/local_m2")
        zeros = np.zeros(like.shape, dtype="int32")
        layout = {"chunks": like.chunks, "shards": like.shards, "compressors": _COMPRESSOR}
        _create_described(self.group, self.meta, _MISSING, data=zeros, **layout)

    def global_norm(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation per level over everything ingested."""
        names = ("stats/global_count", "stats/global_mean", "stats/global_m2")
        count, mean, m2 = self._stable(lambda pending: [self._read(n, pending) for n in names])
        return mean, np.sqrt(m2 / np.maximum(count, 1))

    def local_norm(self, yyyymm: int) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation per level and grid point of one month, (level, lat, lon)."""
        return self._stable(lambda pending: self._local_norm(yyyymm, pending))

    def _local_norm(self, yyyymm: int, pending: Pending | None) -> tuple[np.ndarray, np.ndarray]:
        where = np.flatnonzero(self._read("stats/month", pending) == yyyymm)
        if where.size == 0:
            raise StoreError(f"field {self.name}: no statistics for month {yyyymm}")
        row = int(where[0])
        count: float | np.ndarray = float(self._read("stats/local_count", pending)[row])
        if self._has_missing(pending):
            count = count - self._row(_MISSING, row, pending)
        mean = self._row("stats/local_mean", row, pending)
        m2 = self._row("stats/local_m2", row, pending)
        return mean, np.sqrt(m2 / np.maximum(count, 1.0))

    def _missing_mask(
        self, level_index: np.ndarray | None, pending: Pending | None
    ) -> np.ndarray | None:
        if not self._has_missing(pending):
            return None
        levels = slice(None) if level_index is None else level_index
        mask: np.ndarray | None = None
        for row in range(len(self._read("stats/month", pending))):  # bounded memory
            month = self._row(_MISSING, row, pending)[levels] > 0
            mask = month if mask is None else mask | month
        return mask if mask is not None and mask.any() else None

    def _stable(self, read: Callable[[Pending | None], _T]) -> _T:
        """`read` of the committed state, repeated if an ingest started, committed or rolled
        back meanwhile; the writer reads its own state."""
        if self.journal is None:
            return read(None)
        return stable_read(self.journal, read)

    def _kept(self, path: str, row: int, pending: Pending | None) -> Path | None:
        """Where the journal keeps the committed `row` of an array the ingest rewrites."""
        if pending is None:
            return None
        first = pending.first_row(f"{self.name}/{path}")
        return None if first is None or row < first else pending.kept / self.name / path

    def _read(self, path: str, pending: Pending | None) -> np.ndarray:
        """A small array as committed: rows the running ingest rewrites from the journal."""
        live = np.asarray(self.array(path)[...])
        first = None if pending is None else pending.first_row(f"{self.name}/{path}")
        if first is None:
            return live
        kept = self._kept(path, first, pending)
        assert kept is not None
        with _metadata_errors(kept):
            committed = np.asarray(zarr.open_array(str(kept), mode="r")[first:])
        return np.concatenate([live[:first], committed])

    def _row(self, path: str, row: int, pending: Pending | None) -> np.ndarray:
        """One row (month) of a sharded statistics array as committed."""
        source = self._kept(path, row, pending) or self.folder / path
        return np.asarray(open_fast(source)[row].read().result())

    def _has_missing(self, pending: Pending | None) -> bool:
        if pending is not None and f"{self.name}/data" in pending.first_chunks:
            return (pending.kept / self.name / _MISSING / "zarr.json").exists()
        return _MISSING in self.group


class Store:
    """An opened training store: a writer's (`prepare`) or a reader's view of the committed data."""

    def __init__(self, path: Path, root: zarr.Group, committed: _Committed | None = None) -> None:
        self.path = path
        self.root: zarr.Group = root
        self.journal = Journal(path)
        self._committed = committed  # None: the writer, who sees everything

    @classmethod
    def open(cls, path: Path, writable: bool = False) -> Store:
        path = path.resolve()  # tensorstore refuses paths with '..'
        if not (path / "zarr.json").is_file():
            raise StoreError(f"{path}: not an atmorep store (no zarr.json); run 'atmorep prepare'")
        with _metadata_errors(path):
            root = _open_root(path, writable)
        version = root.attrs.get("format_version")
        if version != FORMAT_VERSION:
            raise StoreError(f"{path}: store format {version}, this atmorep reads {FORMAT_VERSION}")
        store = cls(path, root, None if writable else _committed(path))
        for name in sorted({*store.fields, *store.attributes.get(COMMITTED_TIMES, {})}):
            store._arrays(name).check_metadata()
        if writable and store.journal.pending() is None:
            store.consolidate()  # after a run killed between its commit and its consolidation
        return store

    @classmethod
    def create(cls, path: Path, grid: LatLonGrid) -> Store:
        """A new empty store; built under a temporary name and renamed, so never half-made."""
        path = path.resolve()
        if path.exists():
            raise StoreError(f"{path}: exists and is not an atmorep store")
        building = path.with_name(path.name + ".creating")
        shutil.rmtree(building, ignore_errors=True)
        attrs: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "grid": grid.to_attrs(),
            "sources": [],
            "conventions": "time in seconds since 1970-01-01T00:00:00Z",
        }
        try:
            add_axes(zarr.open_group(str(building), mode="w", attributes=attrs), grid)
            write_root(building, attrs, consolidate=True)
            os.replace(building, path)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        return cls.open(path, writable=True)

    @property
    def attributes(self) -> dict[str, Any]:
        """The root's attributes: as committed for a reader, as they are for the writer."""
        if self._committed is not None:
            return self._committed.attributes
        return dict(self.root.attrs)

    @cached_property
    def grid(self) -> LatLonGrid:
        return LatLonGrid.from_attrs(self.attributes["grid"])

    @property
    def fields(self) -> list[str]:
        times = None if self._committed is None else self._committed.times
        if times is not None:
            return sorted(times)
        return self._groups()

    def _groups(self) -> list[str]:
        """The field groups on disk, each zarr.json read on its own so that a damaged one is
        named (a folder without zarr.json is no field: `open` names a committed one)."""
        names = []
        for metadata in self.path.glob("*/zarr.json"):
            with _metadata_errors(metadata.parent):
                node = json.loads(metadata.read_text())
            if isinstance(node, dict) and node.get("node_type") == "group":
                names.append(metadata.parent.name)
        return sorted(names)

    @property
    def updating(self) -> bool:
        """Whether an ingest is running (or was interrupted and awaits its rollback)."""
        return self.journal.pending() is not None

    def updating_error(self, what: str) -> StoreUpdatingError:
        return StoreUpdatingError(
            f"{self.path}: store being updated by another run, retry ({what})"
        )

    def field(self, name: str) -> FieldArrays:
        if name not in self.fields:
            if self.updating:
                raise self.updating_error(f"field {name!r} is not committed yet")
            raise StoreError(f"{self.path}: no field {name!r} (has: {', '.join(self.fields)})")
        return self._arrays(name)

    def _arrays(self, name: str) -> FieldArrays:
        with _metadata_errors(self.path / name):
            group = self.root[name]
        if not isinstance(group, zarr.Group):
            raise StoreError(f"{self.path / name}: not a field group")
        if self._committed is None:
            return FieldArrays(group, self.path / name)
        extent = None if self._committed.times is None else self._committed.times[name]
        return FieldArrays(group, self.path / name, extent, self.journal)

    @property
    def sources(self) -> list[dict[str, Any]]:
        return list(self.attributes.get("sources", []))

    def commit_sources(self, sources: list[dict[str, Any]]) -> None:
        """Record the ingested files with every field's time steps: the ingest's last change,
        one atomic write of the root's metadata, after which readers may see its data. Plain
        zarr readers keep the last commit's consolidated metadata until `consolidate`."""
        times = {name: int(self.field(name).array("time").shape[0]) for name in self.fields}
        for name in self.fields:  # a store from before it described itself
            describe_field(self.field(name).group, self.path / name, self.grid)
        attributes = dict(self.root.attrs) | {"sources": sources, COMMITTED_TIMES: times}
        write_root(self.path, attributes, consolidate=False)
        self.root = _open_root(self.path, writable=True)

    def consolidate(self) -> None:
        """The hierarchy as it is now into the root's consolidated metadata, for plain zarr
        readers (xarray): after an ingest has committed, never during it."""
        write_root(self.path, dict(self.root.attrs), consolidate=True)
        self.root = _open_root(self.path, writable=True)

    def record_committed_times(self) -> None:
        """Record what is committed now where nothing is recorded (a new store, or one written
        before `committed_times` existed), before an ingest: its readers then see only that.
        A store without the record shows its whole time axis (stores written through this API
        alone, without `prepare`)."""
        if COMMITTED_TIMES not in self.root.attrs:
            self.commit_sources(self.sources)
            self.consolidate()

    def add_field(
        self, meta: FieldMeta, levels: np.ndarray, allows_missing: bool = False
    ) -> FieldArrays:
        """Create an empty field group with its arrays (time axis of length 0); with
        `allows_missing` also the per-point counts of missing values."""
        nlat, nlon = self.grid.shape
        nlev = len(levels)
        group = self.root.create_group(meta.name, attributes={**meta.__dict__, "time_step_s": None})
        group.create_group("stats")

        def create(path: str, **layout: Any) -> None:
            _create_described(group, meta, path, **layout)

        create("data", shape=(0, nlev, nlat, nlon), dtype="float32", chunks=INNER_CHUNK,
               shards=SHARD, compressors=_COMPRESSOR, fill_value=np.nan)  # fmt: skip
        create("time", shape=(0,), dtype="int64", chunks=(8784,), fill_value=0)
        create("level", data=levels.astype("int32"))
        for name in ("global_count", "global_mean", "global_m2"):
            create(f"stats/{name}", data=np.zeros(nlev))
        create("stats/month", shape=(0,), dtype="int32", chunks=(1024,), fill_value=0)
        create("stats/local_count", shape=(0,), dtype="float64", chunks=(1024,))
        # A month's statistics are one shard of small chunks: the sampler reads just the window.
        month_shard = (1, nlev, _round_up(nlat, INNER_CHUNK[2]), _round_up(nlon, INNER_CHUNK[3]))
        names = ("local_mean", "local_m2", *(("local_missing",) if allows_missing else ()))
        for name in names:
            create(f"stats/{name}", shape=(0, nlev, nlat, nlon),
                   dtype="int32" if name == "local_missing" else "float64",
                   chunks=(1, 1, *INNER_CHUNK[2:]), shards=month_shard, compressors=_COMPRESSOR,
                   fill_value=0)  # fmt: skip
        add_axes(group, self.grid)
        return FieldArrays(group, self.path / meta.name)


def _create_described(group: zarr.Group, meta: FieldMeta, path: str, **layout: Any) -> None:
    """One of a field's arrays, with its dimension names and CF attributes."""
    dims, attrs = array_description(path, meta.name, meta.units, meta.level_type)
    group.create_array(path, dimension_names=list(dims), attributes=attrs, **layout)


def _open_root(path: Path, writable: bool) -> zarr.Group:
    """The root as its files are now: never from the consolidated metadata, which holds the
    last commit (for plain zarr readers) and may be older than the arrays during an ingest."""
    return zarr.open_group(str(path), mode="r+" if writable else "r", use_consolidated=False)


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def seconds_since_epoch(times: np.ndarray) -> np.ndarray:
    return (times.astype("datetime64[s]") - _EPOCH).astype("int64")


@dataclass(frozen=True)
class _Committed:
    """What readers see of the root: its committed attributes and time steps per field."""

    attributes: dict[str, Any]
    times: dict[str, int] | None  # None: a store from before they were recorded: all


def _committed(path: Path) -> _Committed:
    def read(pending: Pending | None) -> _Committed:
        if pending is not None:
            attributes = pending.root_attributes()
        else:
            with _metadata_errors(path / "zarr.json"):
                attributes = json.loads((path / "zarr.json").read_text())["attributes"]
        times = attributes.get(COMMITTED_TIMES)
        return _Committed(
            attributes, None if times is None else {k: int(v) for k, v in times.items()}
        )

    return stable_read(Journal(path), read)


@contextmanager
def _metadata_errors(where: Path) -> Iterator[None]:
    """A missing or unreadable zarr.json as one StoreError naming where."""
    try:
        yield
    except KeyError as error:
        raise StoreError(
            f"{where}: no zarr.json (a damaged store: restore or rebuild it)"
        ) from error
    except (ValueError, TypeError) as error:  # json.JSONDecodeError is a ValueError
        raise StoreError(f"{where}: corrupt zarr.json ({short_message(error)})") from error
