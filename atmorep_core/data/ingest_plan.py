"""Planning an ingest: which messages of a GRIB file go where, checked before anything is written.

A plan holds, per field, the regular sequence of valid times and for each (time, level) the
messages to decode (one, or all ensemble members when their mean is kept). Every problem the user
can fix (unknown parameters, missing levels or hours, duplicates, missing values, units that
cannot be converted, accumulation periods of several lengths) is found here; values are checked
against `plausibility.RANGES`: those the scan decoded (small fields) here, before anything is
written, the others as they are decoded, inside the file's transaction. Bitmap-missing
points are refused except in fields that allow them (`fields.Field.allows_missing`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from atmorep_core import fields
from atmorep_core.data import plausibility
from atmorep_core.errors import InputDataError
from atmorep_core.grid import GaussianGrid, LatLonGrid
from atmorep_core.io.grib_scan import MessageHeader
from atmorep_core.units import conversion_factor

MEMBER_MEAN = "mean"


@dataclass(frozen=True)
class IngestOptions:
    """What to take from the input files."""

    fields: tuple[str, ...] | None = None  # canonical names, shortNames or paramIds; None: all
    levels: tuple[int, ...] | None = None  # None: every level the file has
    member: int | str | None = None  # an ensemble number, "mean", or None: the lowest number
    resolution_deg: float | None = None  # lat-lon spacing when regridding Gaussian input
    times: tuple[np.datetime64, np.datetime64] | None = None  # valid times kept (ends included)
    allow_implausible: bool = False  # ingest values outside `plausibility.RANGES` (experiments)


@dataclass(frozen=True)
class FieldPlan:
    field: fields.Field
    level_type: str
    levels: np.ndarray  # (level,) int
    times: np.ndarray  # (time,) datetime64[s], sorted, regular
    messages: list[list[list[MessageHeader]]]  # [time][level] -> members to decode (averaged)
    member: str  # what was kept: "3", "mean"
    scale: float = 1.0  # multiplies the decoded values into the store's unit (field.units)
    accumulation_s: int | None = None  # accumulated fields: the one period length, in seconds
    check_plausible: bool = True  # refuse values outside the field's plausible range

    @property
    def step(self) -> np.timedelta64 | None:
        return self.times[1] - self.times[0] if len(self.times) > 1 else None


@dataclass(frozen=True)
class FilePlan:
    grid: LatLonGrid | GaussianGrid
    fields: list[FieldPlan]
    message_count: int

    @property
    def first_time(self) -> np.datetime64:
        return min(plan.times[0] for plan in self.fields)


def plan_file(headers: Sequence[MessageHeader], options: IngestOptions) -> FilePlan:
    selected = _select_fields(headers, options)
    if options.times is not None:
        first, last = options.times
        selected = [h for h in selected if first <= h.valid_time <= last]
        if not selected:
            raise InputDataError(f"{headers[0].path.name}: no messages from {first} to {last}")
    grid = _common_grid(selected)
    by_field: dict[str, list[MessageHeader]] = defaultdict(list)
    for header in selected:
        by_field[fields.from_grib(header.short_name, header.param_id).name].append(header)
    plans = [_plan_field(name, group, options) for name, group in sorted(by_field.items())]
    return FilePlan(grid, plans, len(selected))


def time_runs(
    headers: Sequence[MessageHeader], options: IngestOptions
) -> list[tuple[np.datetime64, np.datetime64]]:
    """(first, last) valid time of each run of regular steps in the selected messages: a file
    that misses time steps is ingested one run per store (a store's time axis has no gaps)."""
    times = np.unique(np.array([h.valid_time for h in _select_fields(headers, options)]))
    if len(times) < 3:
        return [(times[0], times[-1])]
    steps = np.diff(times)
    runs = np.split(times, np.flatnonzero(steps != steps.min()) + 1)
    return [(run[0], run[-1]) for run in runs]


def _select_fields(headers: Sequence[MessageHeader], options: IngestOptions) -> list[MessageHeader]:
    if options.fields is None:
        for header in headers:  # every parameter must be known when none was selected
            fields.from_grib(header.short_name, header.param_id)
        return list(headers)
    wanted = {fields.lookup(key).name for key in options.fields}
    chosen = [h for h in headers if _field_name_or_none(h) in wanted]
    found = {_field_name_or_none(h) for h in chosen}
    if missing := sorted(wanted - found):
        raise InputDataError(
            f"{headers[0].path.name}: no messages for field(s) {', '.join(missing)}"
        )
    return chosen


def _field_name_or_none(header: MessageHeader) -> str | None:
    try:
        return fields.from_grib(header.short_name, header.param_id).name
    except InputDataError:
        return None


def _common_grid(headers: Sequence[MessageHeader]) -> LatLonGrid | GaussianGrid:
    first = headers[0].regular_grid
    for header in headers:
        if not _same_grid(header.regular_grid, first):
            raise InputDataError(f"{header.where}: grid differs from the file's first message")
    return first


def _same_grid(a: LatLonGrid | GaussianGrid, b: LatLonGrid | GaussianGrid) -> bool:
    if isinstance(a, LatLonGrid) and isinstance(b, LatLonGrid):
        return a.matches(b)
    if isinstance(a, GaussianGrid) and isinstance(b, GaussianGrid):
        return a.shape == b.shape and abs(a.lon_first - b.lon_first) < 1e-6
    return False


def _plan_field(name: str, headers: list[MessageHeader], options: IngestOptions) -> FieldPlan:
    where = headers[0].path.name
    level_types = {h.level_type for h in headers}
    if len(level_types) > 1:
        raise InputDataError(f"{where}: field {name} on several level types {sorted(level_types)}")
    headers, member = _choose_members(name, headers, options.member)
    levels = _choose_levels(name, headers, options.levels)
    field = fields.lookup(name)
    _check_missing(field, headers)
    times = np.array(sorted({h.valid_time for h in headers}), dtype="datetime64[s]")
    _check_regular(name, where, times)
    cells: dict[tuple[np.datetime64, int], list[MessageHeader]] = defaultdict(list)
    kept_levels = set(levels.tolist())
    for header in headers:
        if header.level in kept_levels:
            cells[(header.valid_time, header.level)].append(header)
    messages = []
    for time in times:
        row = []
        for level in levels:
            cell = cells.get((time, int(level)), [])
            if not cell:
                raise InputDataError(f"{where}: field {name} misses level {level} at {time}")
            if len({h.member for h in cell}) != len(cell):
                raise InputDataError(f"{where}: duplicate {name} level {level} at {time}")
            row.append(cell)
        messages.append(row)
    scale = _scale(field, headers)
    if not options.allow_implausible:
        _check_decoded(field, [h for cell in cells.values() for h in cell], scale)
    accumulation = _accumulation(field, headers)
    return FieldPlan(
        field, headers[0].level_type, levels, times, messages, member, scale, accumulation,
        check_plausible=not options.allow_implausible,
    )  # fmt: skip


def _check_decoded(field: fields.Field, headers: list[MessageHeader], scale: float) -> None:
    """The values the scan decoded (small fields) are checked before anything is written; the
    ingest checks the others as it decodes them."""
    for header in headers:
        if header.values is not None:
            plausibility.check(header.values, field, describe_message(header), scale)


def _check_missing(field: fields.Field, headers: list[MessageHeader]) -> None:
    if field.allows_missing:
        return
    for header in headers:
        if header.missing:
            raise InputDataError(
                f"{header.where}: {header.missing} missing values (bitmap) in "
                f"{header.short_name} at {header.valid_time}; the store needs complete fields"
            )


def _scale(field: fields.Field, headers: list[MessageHeader]) -> float:
    """The factor into the store's unit; one unit per field and file."""
    units = sorted({h.units for h in headers})
    where = headers[0].path.name
    if len(units) > 1:
        raise InputDataError(f"{where}: field {field.name} comes in several units {units}")
    return conversion_factor(units[0], field.units, f"{where}: field {field.name}")


def _accumulation(field: fields.Field, headers: list[MessageHeader]) -> int | None:
    """The accumulation period every message of an accumulated field shares, in seconds."""
    if not field.accumulated:
        return None
    lengths = sorted({h.accumulation_s for h in headers if h.accumulation_s is not None})
    if len(lengths) > 1:
        shown = ", ".join(describe_period(length) for length in lengths)
        raise InputDataError(
            f"{headers[0].path.name}: field {field.name} mixes accumulation periods of {shown}; "
            "a store field holds one period length (ingest each period into its own store)"
        )
    return lengths[0] if lengths else None


def describe_message(header: MessageHeader) -> str:
    """Where a value comes from, for messages: file, message number, level and time."""
    return f"{header.where}, level {header.level}, {header.valid_time}"


def describe_period(seconds: int | None) -> str:
    """An accumulation period for messages: "12 h", "90 min", "none recorded"."""
    if seconds is None:
        return "none recorded"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds / 60:g} min"


def _choose_members(
    name: str, headers: list[MessageHeader], member: int | str | None
) -> tuple[list[MessageHeader], str]:
    present = sorted({h.member for h in headers})
    if member == MEMBER_MEAN:
        return headers, MEMBER_MEAN
    chosen = present[0] if member is None else int(member)
    if chosen not in present:
        raise InputDataError(
            f"{headers[0].path.name}: field {name} has no ensemble member {chosen} "
            f"(members: {', '.join(map(str, present))})"
        )
    return [h for h in headers if h.member == chosen], str(chosen)


def _choose_levels(
    name: str, headers: list[MessageHeader], wanted: tuple[int, ...] | None
) -> np.ndarray:
    present = sorted({h.level for h in headers})
    if wanted is None:
        return np.array(present, dtype=np.int64)
    if missing := [level for level in wanted if level not in present]:
        raise InputDataError(
            f"{headers[0].path.name}: field {name} lacks level(s) "
            f"{', '.join(map(str, missing))} (has {', '.join(map(str, present))})"
        )
    return np.array(sorted(wanted), dtype=np.int64)


def _check_regular(name: str, where: str, times: np.ndarray) -> None:
    if len(times) < 3:
        return
    steps = np.diff(times)
    step = steps.min()
    if (steps != step).any():
        expected = np.arange(times[0], times[-1] + step, step)
        missing = np.setdiff1d(expected, times)
        shown = ", ".join(str(t) for t in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise InputDataError(f"{where}: field {name} misses time step(s) {shown}")
