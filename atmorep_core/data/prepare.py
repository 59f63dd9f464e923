"""`prepare`: GRIB files -> the training store, incremental, resumable and all-or-nothing per file.

Each call takes the store's lock, rolls back an ingest that an earlier run left unfinished, skips
files already ingested (by SHA-256), checks every new file completely before writing (see
`ingest_plan`), and then ingests file by file, each inside an undo-journal transaction.
Decoded values are brought to the store's unit and conventions by `conform` (precipitation:
metres, NaN where the input's bitmap says missing, packing noise below zero clipped); a file
whose unit or accumulation period differs from the store's field is refused before writing.
bz2-compressed GRIB (DWD's open data, `io.compressed`) is read through a temporary plain copy
beside the store; the store records the compressed file and its checksum, so reruns skip it.
"""

from __future__ import annotations

import hashlib
import shutil
import time as clock
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from atmorep_core.data.conform import conform
from atmorep_core.data.ingest_plan import (
    FieldPlan,
    FilePlan,
    IngestOptions,
    describe_message,
    describe_period,
    plan_file,
)
from atmorep_core.data.normalize import Moments, RunningMoments, pool_grid_points
from atmorep_core.data.plausibility import check as check_plausible
from atmorep_core.errors import InputDataError, StoreBusyError, StoreError
from atmorep_core.grid import GaussianGrid, GaussianToLatLon, LatLonGrid
from atmorep_core.io import grib_read
from atmorep_core.io.compressed import plain_grib
from atmorep_core.io.journal import Journal
from atmorep_core.io.store import (
    SHARD,
    FieldArrays,
    FieldMeta,
    Store,
    seconds_since_epoch,
)
from atmorep_core.io.tensorstore_arrays import filesystem_error, write_rows

Progress = Callable[[str, float], None]
# Rows are written in whole shards, as many as fit this many bytes: fewer, larger writes.
_BLOCK_BYTES = 256 * 2**20


@dataclass
class FileReport:
    path: str
    sha256: str
    status: str  # "ingested" or "skipped"
    fields: list[str] = field(default_factory=list)
    first_time: str | None = None
    last_time: str | None = None
    messages: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class _Ingest:
    path: Path
    sha256: str
    plan: FilePlan


def prepare(
    paths: Sequence[Path],
    store_path: Path,
    options: IngestOptions = IngestOptions(),
    progress: Progress | None = None,
) -> list[FileReport]:
    """Ingest GRIB files into the store at `store_path`, creating it if needed. A full disk, a
    read-only file system or missing permissions are a FileSystemError, the store left as it was."""
    store_path = store_path.resolve()  # tensorstore refuses '..'; messages name the real place
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise InputDataError(f"no such file: {', '.join(missing)}")
    lock = _lock(store_path)
    try:
        return _prepare_locked(paths, store_path, options, progress or _silent)
    except (OSError, ValueError) as error:  # tensorstore reports a full disk as a ValueError
        _raise_filesystem_error(error, store_path)
        raise
    finally:
        lock.release()


def _lock(store_path: Path) -> FileLock:
    lock = FileLock(str(store_path.with_name(store_path.name + ".lock")))
    try:
        lock.acquire(timeout=0)
    except Timeout as busy:
        raise StoreBusyError(f"{store_path}: another atmorep run is writing this store") from busy
    except OSError as error:
        _raise_filesystem_error(error, Path(lock.lock_file))
        raise
    return lock


def _raise_filesystem_error(error: OSError | ValueError, where: Path) -> None:
    """Raise the FileSystemError for an error of the environment (full disk, read-only...)."""
    converted = filesystem_error(error, where)
    if converted is not None:
        raise converted from error


def _prepare_locked(
    paths: Sequence[Path], store_path: Path, options: IngestOptions, progress: Progress
) -> list[FileReport]:
    Journal(store_path).recover()
    store = Store.open(store_path, writable=True) if store_path.exists() else None
    known = {source["sha256"] for source in store.sources} if store else set()
    unpacked = _unpacked_folder(store_path)
    reports, todo = [], []
    for path in dict.fromkeys(paths):  # drop repeats, keep order
        digest = _sha256(path)
        if digest in known:
            reports.append(FileReport(str(path), digest, "skipped"))
            continue
        known.add(digest)
        with plain_grib(path, unpacked) as readable:
            plan = plan_file(grib_read.scan(readable), options)
        todo.append(_Ingest(path, digest, plan))
    todo.sort(key=lambda ingest: ingest.plan.first_time)
    if not todo:
        return reports
    created = store is None
    if store is None:
        store = Store.create(store_path, _store_grid(todo[0].plan.grid, options))
    try:
        store.record_committed_times()  # so that readers see only what each ingest commits
        _check_all(store, todo)
        total = sum(i.plan.message_count for i in todo)
        done = 0
        for ingest in todo:
            # The plan's messages name the plain copy, made again under the same name.
            with plain_grib(ingest.path, unpacked):
                reports.append(_ingest_file(store, ingest, progress, done, total))
            done += ingest.plan.message_count
    except BaseException:
        if created and not Store.open(store_path).sources:
            shutil.rmtree(store_path)  # nothing landed: leave no empty store behind
        raise
    return reports


def _unpacked_folder(store_path: Path) -> Path:
    """Where compressed input is decompressed: beside the store, on the disk meant for data."""
    return store_path.with_name(f".{store_path.name}.unpacked")


def _store_grid(grid: LatLonGrid | GaussianGrid, options: IngestOptions) -> LatLonGrid:
    if isinstance(grid, LatLonGrid):
        return grid
    return LatLonGrid.global_grid(options.resolution_deg or 360.0 / grid.nlon)


def _check_all(store: Store, todo: Sequence[_Ingest]) -> None:
    """Everything that can be checked against the store before the first write."""
    ends: dict[str, tuple[np.datetime64, np.timedelta64 | None]] = {}
    for name in store.fields:
        arrays = store.field(name)
        if len(arrays.times):
            ends[name] = (arrays.times[-1], arrays.time_step)
    for ingest in todo:
        _check_grid(ingest.plan.grid, store.grid, ingest.path)
        for plan in ingest.plan.fields:
            if plan.field.name in store.fields:
                _check_levels(store.field(plan.field.name), plan, ingest.path)
            ends[plan.field.name] = _check_continues(ends.get(plan.field.name), plan, ingest.path)


def _check_grid(grid: LatLonGrid | GaussianGrid, store_grid: LatLonGrid, path: Path) -> None:
    """Lat-lon input must be on the store's grid; Gaussian input is regridded onto a regular
    lat-lon store, never onto a rotated one."""
    fits = grid.matches(store_grid) if isinstance(grid, LatLonGrid) else not store_grid.is_rotated
    if not fits:
        raise StoreError(
            f"{path.name}: grid {grid.describe()} does not match the store's grid "
            f"{store_grid.describe()}"
        )


def _check_levels(arrays: FieldArrays, plan: FieldPlan, path: Path) -> None:
    meta = arrays.meta
    if meta.units != plan.field.units:
        raise StoreError(
            f"{path.name}: field {plan.field.name} is ingested in {plan.field.units!r}, the "
            f"store holds it in {meta.units!r} (a store from another atmorep; prepare a new one)"
        )
    if meta.accumulation_s != plan.accumulation_s:
        raise StoreError(
            f"{path.name}: field {plan.field.name} is accumulated over "
            f"{describe_period(plan.accumulation_s)}, the store's over "
            f"{describe_period(meta.accumulation_s)}; one store field holds one period length"
        )
    if arrays.meta.level_type != plan.level_type or not np.array_equal(arrays.levels, plan.levels):
        raise StoreError(
            f"{path.name}: field {plan.field.name} has {plan.level_type} levels "
            f"{plan.levels.tolist()}, the store has {arrays.meta.level_type} levels "
            f"{arrays.levels.tolist()} (select them with --levels)"
        )
    if arrays.meta.member != plan.member:
        raise StoreError(
            f"{path.name}: field {plan.field.name} member {plan.member}, store has "
            f"member {arrays.meta.member} (select it with --member)"
        )


def _check_continues(
    end: tuple[np.datetime64, np.timedelta64 | None] | None, plan: FieldPlan, path: Path
) -> tuple[np.datetime64, np.timedelta64 | None]:
    """The field's times must extend the store's regular time axis without gap or overlap."""
    first, last, step = plan.times[0], plan.times[-1], plan.step
    if end is None:
        return last, step
    store_last, store_step = end
    if first <= store_last:
        raise InputDataError(
            f"{path.name}: field {plan.field.name} has times from {first}, the store already "
            f"holds times up to {store_last} (duplicate times)"
        )
    expected_step = store_step or step or (first - store_last)
    if step is not None and step != expected_step:
        raise InputDataError(
            f"{path.name}: field {plan.field.name} steps by {step}, the store by {expected_step}"
        )
    if first != store_last + expected_step:
        raise InputDataError(
            f"{path.name}: field {plan.field.name} starts at {first}; the store ends at "
            f"{store_last}, so time steps from {store_last + expected_step} are missing"
        )
    return last, expected_step


def _ingest_file(
    store: Store, ingest: _Ingest, progress: Progress, done: int, total: int
) -> FileReport:
    started = clock.perf_counter()
    plan = ingest.plan
    regrid = (
        GaussianToLatLon(plan.grid, store.grid) if isinstance(plan.grid, GaussianGrid) else None
    )
    first_rows = _first_rows(store, plan)
    with Journal(store.path).transaction(first_rows):
        for field_plan in plan.fields:
            done = _ingest_field(store, field_plan, regrid, progress, done, total)
        _record_source(store, ingest)
    store.consolidate()  # plain zarr readers see the commit
    times = np.concatenate([p.times for p in plan.fields])
    return FileReport(
        str(ingest.path),
        ingest.sha256,
        "ingested",
        [p.field.name for p in plan.fields],
        str(times.min()),
        str(times.max()),
        plan.message_count,
        clock.perf_counter() - started,
    )


def _first_rows(store: Store, plan: FilePlan) -> dict[str, int]:
    """For the journal: from which row on each array of the touched fields may change."""
    rows: dict[str, int] = {}
    for field_plan in plan.fields:
        name = field_plan.field.name
        if name not in store.fields:
            continue  # a new group: the rollback deletes it whole
        arrays = store.field(name)
        months = arrays.months
        last_month_row = max(len(months) - 1, 0)
        rows |= {f"{name}/data": len(arrays.times), f"{name}/time": len(arrays.times)}
        rows |= {f"{name}/stats/{a}": 0 for a in ("global_count", "global_mean", "global_m2")}
        rows |= {f"{name}/stats/{a}": last_month_row for a in _MONTHLY_ARRAYS}
        rows[f"{name}/stats/local_missing"] = last_month_row  # skipped where absent
    return rows


def _ingest_field(
    store: Store,
    plan: FieldPlan,
    regrid: GaussianToLatLon | None,
    progress: Progress,
    done: int,
    total: int,
) -> int:
    name = plan.field.name
    if name in store.fields:
        arrays = store.field(name)
        if plan.field.allows_missing:
            arrays.ensure_missing_counts()
    else:
        meta = FieldMeta(
            name, plan.field.short_name, plan.field.param_id, plan.field.units,
            plan.level_type, plan.member, plan.accumulation_s,
        )  # fmt: skip
        arrays = store.add_field(meta, plan.levels, plan.field.allows_missing)
    start = len(arrays.times)
    stop = start + len(plan.times)
    _extend_time_axis(arrays, plan, start, stop)
    data = arrays.fast("data")
    monthly: dict[int, RunningMoments] = {}
    shards_per_block = max(1, _BLOCK_BYTES // (SHARD[0] * _bytes_per_step(arrays)))
    block_rows = SHARD[0] * shards_per_block
    # A pipeline on two cores: while this thread decodes the next block with eccodes, a helper
    # thread updates the statistics of the last one and tensorstore compresses and writes it.
    with ThreadPoolExecutor(max_workers=1) as helper:
        in_flight: Future[None] | None = None
        for block_start in range(start, stop, block_rows):
            block_stop = min(stop, (block_start // block_rows + 1) * block_rows)
            rows = slice(block_start - start, block_stop - start)
            block = _decode_block(plan, rows, regrid)  # (time, level, lat, lon)
            if in_flight is not None:
                in_flight.result()
            written = write_rows(data, block_start, block)
            times = plan.times[rows]
            in_flight = helper.submit(
                _accumulate_monthly, monthly, times, block, written, plan.field.allows_missing
            )
            done += (block_stop - block_start) * len(plan.levels) * len(plan.messages[0][0])
            progress(f"{name} {plan.times[rows][-1]}", done / total)
        if in_flight is not None:
            in_flight.result()
    _merge_statistics(arrays, monthly)
    return done


def _bytes_per_step(arrays: FieldArrays) -> int:
    return int(np.prod(arrays.data.shape[1:])) * 4


def _extend_time_axis(arrays: FieldArrays, plan: FieldPlan, start: int, stop: int) -> None:
    arrays.data.resize((stop, *arrays.data.shape[1:]))
    time_array = arrays.array("time")
    time_array.resize((stop,))
    time_array[start:stop] = seconds_since_epoch(plan.times)
    step = arrays.time_step or plan.step
    if step is None and start > 0:
        step = plan.times[0] - arrays.times[-1]
    if step is not None:
        arrays.group.attrs["time_step_s"] = int(step / np.timedelta64(1, "s"))


def _decode_block(plan: FieldPlan, rows: slice, regrid: GaussianToLatLon | None) -> np.ndarray:
    cells = [cell for row in plan.messages[rows] for cell in row]
    decoded = grib_read.decode([h for cell in cells for h in cell])
    first = cells[0][0]
    shape = regrid.target.shape if regrid else first.regular_grid.shape
    block = np.empty((len(cells), *shape), dtype=np.float32)
    times = plan.times[rows]
    for i, cell in enumerate(cells):
        members = [next(decoded) for _ in cell]
        if plan.check_plausible:  # those the scan decoded were checked when planning
            for header, member in zip(cell, members, strict=True):
                if header.values is None:
                    check_plausible(member, plan.field, describe_message(header), plan.scale)
        values = members[0] if len(members) == 1 else np.mean(members, axis=0, dtype=np.float64)
        values = regrid(np.asarray(values)) if regrid else np.asarray(values)
        block[i] = conform(values, plan, first.path.name, times[i // len(plan.levels)])
    return block.reshape(len(plan.messages[rows]), len(plan.levels), *shape)


def _accumulate_monthly(
    monthly: dict[int, RunningMoments],
    times: np.ndarray,
    block: np.ndarray,
    written: Callable[[], None],
    skip_nan: bool,
) -> None:
    months = _yyyymm(times)
    for month in np.unique(months):
        steps = block[months == month]
        monthly.setdefault(int(month), RunningMoments(steps[0], skip_nan)).add(steps)
    written()


def _merge_statistics(arrays: FieldArrays, monthly: dict[int, RunningMoments]) -> None:
    moments_local = {month: sums.moments() for month, sums in monthly.items()}
    moments_global = reduce(Moments.merge, map(pool_grid_points, moments_local.values()))
    previous = Moments(
        arrays.read("stats/global_count").astype(np.float64),
        arrays.read("stats/global_mean"),
        arrays.read("stats/global_m2"),
    )
    merged = previous.merge(moments_global)
    arrays.array("stats/global_count")[:] = np.broadcast_to(merged.count, merged.mean.shape)
    arrays.array("stats/global_mean")[:] = merged.mean
    arrays.array("stats/global_m2")[:] = merged.m2
    months = arrays.read("stats/month").tolist()
    missing = arrays.has_missing_counts
    for month, moments in sorted(moments_local.items()):
        steps = float(monthly[month].count)
        if months and months[-1] == month:  # the store's last month continues
            row = len(months) - 1
            steps += float(arrays.read("stats/local_count")[row])
            moments = _local_row(arrays, row).merge(moments)
        else:
            row = len(months)
            months.append(month)
            for name in _MONTHLY_ARRAYS + (("local_missing",) if missing else ()):
                array = arrays.array(f"stats/{name}")
                array.resize((row + 1, *array.shape[1:]))
            arrays.array("stats/month")[row] = month
        arrays.array("stats/local_count")[row] = steps
        arrays.fast("stats/local_mean")[row].write(moments.mean).result()
        arrays.fast("stats/local_m2")[row].write(moments.m2).result()
        if missing:  # the per-point counts are steps less the missing ones
            absent = (steps - np.broadcast_to(moments.count, moments.mean.shape)).astype(np.int32)
            arrays.fast("stats/local_missing")[row].write(absent).result()


_MONTHLY_ARRAYS = ("month", "local_count", "local_mean", "local_m2")


def _local_row(arrays: FieldArrays, row: int) -> Moments:
    count: float | np.ndarray = float(arrays.read("stats/local_count")[row])
    if arrays.has_missing_counts:
        count = count - arrays.fast("stats/local_missing")[row].read().result()
    return Moments(
        count,
        arrays.fast("stats/local_mean")[row].read().result(),
        arrays.fast("stats/local_m2")[row].read().result(),
    )


def _record_source(store: Store, ingest: _Ingest) -> None:
    times = np.concatenate([p.times for p in ingest.plan.fields])
    record: dict[str, Any] = {
        "file": ingest.path.name,
        "path": str(ingest.path.resolve()),
        "sha256": ingest.sha256,
        "bytes": ingest.path.stat().st_size,
        "fields": [p.field.name for p in ingest.plan.fields],
        "first_time": str(times.min()),
        "last_time": str(times.max()),
        "messages": ingest.plan.message_count,
    }
    store.commit_sources([*store.sources, record])


def _yyyymm(times: np.ndarray) -> np.ndarray:
    months = times.astype("datetime64[M]")
    years = months.astype("datetime64[Y]").astype(int) + 1970
    return years * 100 + (months.astype(int) % 12) + 1


def _sha256(path: Path) -> str:
    with open(path, "rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def _silent(message: str, fraction: float) -> None:
    del message, fraction
