"""Read what a product starts from: one field's levels at given times over a domain of a store.

A store field may hold NaN where its input had missing values (precipitation bitmaps); a window
holding one is refused with an InputDataError naming the field, level and time, since a model
given NaN would spread it through every output. Only committed times are read (`io.store`): a
time beyond them while another run appends to the store is StoreUpdatingError, so a cron job
retries.
"""

from __future__ import annotations

import numpy as np

from atmorep_core.errors import InputDataError, MissingInputError, StoreError
from atmorep_core.io.store import Store

_SHOWN = 6  # missing times named in an error before "and N more"


def read_window(
    store: Store,
    name: str,
    levels: tuple[int, ...],
    times: np.ndarray,
    rows: slice,
    columns: np.ndarray,
) -> np.ndarray:
    """(level, time, lat, lon) float32 values at the given grid rows and columns (any order,
    e.g. across the date line); MissingInputError naming every missing time, InputDataError
    where the window holds missing values (NaN)."""
    arrays = store.field(name)  # StoreUpdatingError if not committed yet while an ingest runs
    stored_levels = [int(v) for v in arrays.levels]
    absent = [lv for lv in levels if lv not in stored_levels]
    if absent:
        raise StoreError(f"{store.path}: {name} has no levels {absent} (has {stored_levels})")
    index = _committed_indices(store, arrays.times, times, name)
    data = arrays.fast()
    times_read = _runs(index)
    columns_read = _runs(columns)
    out = np.empty((len(levels), len(times), rows.stop - rows.start, len(columns)), np.float32)
    for i, level in enumerate(levels):
        li = stored_levels.index(level)
        pieces = [
            [data[t, li, rows, c].read().result() for c in columns_read] for t in times_read
        ]  # [time run][column run] -> (time, lat, lon) blocks
        out[i] = np.concatenate([np.concatenate(row, axis=-1) for row in pieces], axis=0)
    _refuse_missing(out, name, levels, times, store)
    return out


def _committed_indices(
    store: Store, available: np.ndarray, wanted: np.ndarray, name: str
) -> np.ndarray:
    """Indices of the wanted times among the committed ones; while an ingest runs, times beyond
    them are StoreUpdatingError (retry), not missing input."""
    try:
        return time_indices(available, wanted, f"{name} in {store.path}")
    except MissingInputError as missing:
        if store.updating:
            raise store.updating_error(str(missing)) from missing
        raise


def _refuse_missing(
    values: np.ndarray, name: str, levels: tuple[int, ...], times: np.ndarray, store: Store
) -> None:
    """InputDataError at the first (level, time) whose window holds NaN."""
    nan = np.isnan(values)
    if not nan.any():
        return
    level, time = np.argwhere(nan.any(axis=(2, 3)))[0]
    count = int(nan[level, time].sum())
    raise InputDataError(
        f"{name} in {store.path} has {count} missing values (NaN) at level {levels[level]}, "
        f"{str(times.astype('datetime64[s]')[time])[:16]} inside the domain; products need "
        "complete inputs (choose a domain inside the field's valid points)"
    )


def _runs(index: np.ndarray) -> list[slice]:
    """Consecutive runs of integer indices as slices, in order (one read each)."""
    breaks = np.flatnonzero(np.diff(index) != 1) + 1
    return [slice(int(run[0]), int(run[-1]) + 1) for run in np.split(index, breaks)]


def time_indices(available: np.ndarray, wanted: np.ndarray, what: str) -> np.ndarray:
    """Index of every wanted time in `available`; MissingInputError naming those absent."""
    wanted = wanted.astype("datetime64[s]")
    at = np.clip(np.searchsorted(available, wanted), 0, max(len(available) - 1, 0))
    found = (len(available) > 0) & (available[at] == wanted)
    if not np.all(found):
        missing = [str(t)[:16] for t in wanted[~found]]
        more = f" and {len(missing) - _SHOWN} more" if len(missing) > _SHOWN else ""
        held = "none"
        if len(available):
            held = f"{str(available[0])[:16]} .. {str(available[-1])[:16]}"
        raise MissingInputError(
            f"no input for {what} at {', '.join(missing[:_SHOWN])}{more} (it holds {held})"
        )
    return at
