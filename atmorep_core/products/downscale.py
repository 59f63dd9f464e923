"""Downscaling: the fine field from a coarse one, asked of a checkpoint trained on the fine grid
with the downscaling strategy (every token shown only as its block means, predicted in full).

The coarse input (a store; GRIB files are prepared into one first, as for every product) is put
on the part of the checkpoint's grid that it covers, every fine point taking the value of its
nearest coarse point: a coarse grid aligned with the fine one (ERA5's 1 degree over its
0.25 degree) gives whole blocks, which the strategy's block means leave as they are, so the model
is asked exactly what it was trained on. The values are normalised with the checkpoint's
statistics, tiled, asked in windows of the model's time extent (a last window shorter than that
overlaps the one before) and stitched; the product lies on that fine grid, or is regridded onto a
target grid (`target`: a grid named in `recipes/grids.yaml` or any GRIB file's grid, rotated or
regular).

The checkpoint's grid may be rotated (a COSMO-REA6-like store): coverage and the nearest coarse
point are then found by geographic position (`grid.grid_position`), and the covered part is a
block of rotated rows and columns whose every point lies in a coarse cell (the covered points'
bounding block, shrunk edge by edge).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np

from atmorep_core.engine.domain import provenance
from atmorep_core.engine.engine import Predictor, Progress
from atmorep_core.engine.inputs import read_window
from atmorep_core.engine.members import draw_heads, progress_part
from atmorep_core.engine.question import Question, StoreFields, read_store_fields, tile_domain
from atmorep_core.engine.trained import TrainedModel
from atmorep_core.errors import ConfigError, InputDataError
from atmorep_core.grid import LatLonGrid, grid_position
from atmorep_core.io.product import Product, ProductField
from atmorep_core.io.store import Store
from atmorep_core.questions.strategies import DownscalingStrategy
from atmorep_core.regrid import regrid_grid
from atmorep_core.rotated_grid import RotatedGrid, target_grid

_TOLERANCE_DEG = 1e-6


@dataclass(frozen=True)
class DownscaleRequest:
    """What a user asks for (the CLI's options)."""

    start: datetime
    end: datetime
    members: int = 1
    seed: int = 0
    target: str | None = None  # a grid name or a GRIB file; None: the checkpoint's own grid
    batch_size: int = 16


def downscale(
    trained: TrainedModel,
    inputs: Store,
    statistics_store: Store | None,
    request: DownscaleRequest,
    progress: Progress | None = None,
    predictor: Predictor | None = None,
) -> Product:
    """The downscaled product; `predictor` defaults to the trained model (tests pass others)."""
    strategy = trained_strategy(trained)
    configs = {f.name: f for f in trained.config.fields}
    coarse = read_store_fields(inputs, configs)
    fine = Store.open(trained.training_store).grid
    rows, columns = covered(fine, coarse.grid)
    domain = replace(  # a block of the fine grid (with a rotated grid's pole)
        fine, lat_first=float(fine.lat_axis[rows[0]]), nlat=len(rows),
        lon_first=float(fine.lon_axis[columns[0]]), nlon=len(columns),
    )  # fmt: skip
    tiling = tile_domain(domain, trained.extent[1:])
    times = _times(coarse, trained, request)
    question = Question.over(
        trained, predictor or trained.model, strategy, tiling, statistics_store,
        (slice(int(rows[0]), int(rows[-1]) + 1), columns),
    )  # fmt: skip
    nearest = _nearest(coarse.grid, domain)
    whole = slice(0, coarse.grid.nlat), np.arange(coarse.grid.nlon)
    shown = {
        n: read_window(inputs, n, f.levels, times, *whole)[..., nearest[0], nearest[1]]
        for n, f in configs.items()
    }  # (L, T, R, C) each: every fine point takes its nearest coarse value
    members = _members(question, shown, times, trained, request, progress)
    grid: LatLonGrid | RotatedGrid = domain
    if request.target is not None:
        grid = target_grid(request.target)
        members = {n: regrid_grid(v, domain, grid).astype(np.float32) for n, v in members.items()}
    fields = tuple(
        # values (member, level, step, ...) -> (member, step, level, ...)
        ProductField(n, coarse.meta[n].level_type, configs[n].levels, grid, v.swapaxes(1, 2))
        for n, v in members.items()
    )
    attributes = {
        **provenance(trained, str(inputs.path), request.members, request.seed),
        "coarse_grid": coarse.grid.describe(),
        "downscaling_factor": ",".join(map(str, strategy.factor)),
    }
    hours = (times - times[0]) // np.timedelta64(1, "h")
    init = request.start.replace(tzinfo=None)
    return Product(init, tuple(int(h) for h in hours), fields, "downscaling", attributes)


def _members(
    question: Question, shown: dict[str, np.ndarray], times: np.ndarray, trained: TrainedModel,
    request: DownscaleRequest, progress: Progress | None,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Per field (member, level, time, R, C) physical answers, window by window."""
    span = trained.extent[0]
    windows = _windows(len(times), span)
    heads = draw_heads(request.members, len(windows), request.seed, trained)
    out = {n: np.empty((request.members, *v.shape), np.float32) for n, v in shown.items()}
    for number, (start, keep) in enumerate(windows):
        window = slice(start, start + span)
        part = progress_part(progress, number, len(windows), "window")
        answers = question.answer(
            {n: v[:, window] for n, v in shown.items()}, times[window], np.arange(keep, span),
            heads[number], request.batch_size, part,
        )  # fmt: skip
        for member, answer in enumerate(answers):
            for n, values in answer.items():  # (L, span - keep, ...)
                out[n][member, :, start + keep : start + span] = values
    return out


def trained_strategy(trained: TrainedModel) -> DownscalingStrategy:
    """The downscaling question the checkpoint was trained with; ConfigError if none."""
    found = trained.trained_strategies("downscaling")
    if not found:
        raise ConfigError(
            f"--checkpoint {trained.folder}: not trained with the downscaling strategy "
            "(training.masking kind: downscaling)"
        )
    return DownscalingStrategy.model_validate(found[0])


def covered(fine: LatLonGrid, coarse: LatLonGrid) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the fine grid within half a coarse cell of the coarse grid's points:
    on a rotated grid (either), a block of them whose every point is covered."""
    if fine.is_rotated or coarse.is_rotated:
        return _covered_block(fine, coarse)
    half_lat, half_lon = abs(coarse.lat_step) / 2, abs(coarse.lon_step) / 2
    low, high = sorted((coarse.lat_first, coarse.lat_last))
    rows = np.flatnonzero(
        (fine.lats > low - half_lat - _TOLERANCE_DEG) & (fine.lats < high + half_lat)
    )
    east = (fine.lons - coarse.lon_first + half_lon) % 360.0  # from the first cell's west edge
    span = coarse.lon_step * (coarse.nlon - 1) + 2 * half_lon
    columns = np.flatnonzero(east < span - _TOLERANCE_DEG)
    if len(rows) == 0 or len(columns) == 0:
        raise _no_overlap(fine, coarse)
    if len(columns) > 1 and columns[-1] - columns[0] != len(columns) - 1:
        columns = np.roll(columns, -int(np.argmax(np.diff(columns) > 1)) - 1)  # across 0 deg
    return rows, columns


def _no_overlap(fine: LatLonGrid, coarse: LatLonGrid) -> InputDataError:
    return InputDataError(
        f"the input grid ({coarse.describe()}) does not overlap the checkpoint's grid "
        f"({fine.describe()})"
    )


def _covered_block(fine: LatLonGrid, coarse: LatLonGrid) -> tuple[np.ndarray, np.ndarray]:
    """The block of fine rows and columns covered by the coarse cells, by geographic position:
    the covered points' bounding block, shrunk edge by edge (the edge with the largest share of
    uncovered points first) until every point in it is covered."""
    rows, columns = grid_position(coarse, *fine.geographic())
    inside = (rows >= -0.5 - _TOLERANCE_DEG) & (rows < coarse.nlat - 0.5)
    if not coarse.is_global_in_lon:
        inside &= (columns >= -0.5 - _TOLERANCE_DEG) & (columns < coarse.nlon - 0.5)
    if not inside.any():
        raise _no_overlap(fine, coarse)
    found_rows, found_columns = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
    r0, r1, c0, c1 = found_rows[0], found_rows[-1] + 1, found_columns[0], found_columns[-1] + 1
    while not (box := inside[r0:r1, c0:c1]).all():
        edges = [~box[0], ~box[-1], ~box[:, 0], ~box[:, -1]]  # north, south, west, east
        worst = int(np.argmax([edge.mean() for edge in edges]))
        r0, r1 = r0 + (worst == 0), r1 - (worst == 1)
        c0, c1 = c0 + (worst == 2), c1 - (worst == 3)
    if r1 <= r0 or c1 <= c0:
        raise _no_overlap(fine, coarse)
    return np.arange(r0, r1), np.arange(c0, c1)


def _nearest(coarse: LatLonGrid, domain: LatLonGrid) -> tuple[np.ndarray, np.ndarray]:
    """(R, C) coarse row and column of each domain point's nearest coarse point (in the coarse
    grid's axes), by geographic position: on either grid rotated, rows differ along a column."""
    rows, columns = grid_position(coarse, *domain.geographic())
    row = np.rint(rows).astype(np.int64).clip(0, coarse.nlat - 1)
    column = np.rint(columns).astype(np.int64)
    if coarse.is_global_in_lon:
        return row, column % coarse.nlon
    return row, column.clip(0, coarse.nlon - 1)


def _times(coarse: StoreFields, trained: TrainedModel, request: DownscaleRequest) -> np.ndarray:
    """The output times: every step of the input from start to end (`read_window` names any that
    the input lacks)."""
    step = coarse.time_steps[trained.config.fields[0].name] or np.timedelta64(3600, "s")
    first = np.datetime64(request.start.replace(tzinfo=None), "s")
    return first + step * np.arange(output_count(request, step, trained))


def output_count(request: DownscaleRequest, step: np.timedelta64, trained: TrainedModel) -> int:
    """The output's steps of `step` from start to end (counted, not listed: checked before any
    work); ConfigError if the end is before the start or they are fewer than the model answers
    at once."""
    if request.end < request.start:
        raise ConfigError(f"--end {request.end} is before --start {request.start}")
    span = np.timedelta64(request.end - request.start) + step
    count = int(-(-span // step))  # as many as np.arange(start, end + step, step) holds
    if count < trained.extent[0]:
        raise ConfigError(
            f"--start .. --end holds {count} steps; the model answers {trained.extent[0]} "
            "at once: ask for at least that many"
        )
    return count


def _windows(count: int, span: int) -> list[tuple[int, int]]:
    """(first index, answers to skip) of each window: whole windows, the last one overlapping."""
    starts = list(range(0, count - span + 1, span))
    if starts[-1] + span < count:
        starts.append(count - span)
    return [(s, 0 if i == 0 else max(0, starts[i - 1] + span - s)) for i, s in enumerate(starts)]
