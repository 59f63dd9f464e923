"""Model correction: a model trained on reanalysis is shown a forecast model's fields instead.

The seed's experiment: operational IFS fields go in where ERA5 went in training, and what the
model answers lies closer to the reanalysis than the IFS field itself. Two questions:

- `denoise` (the default): nothing hidden, every token predicted (the identity strategy), so the
  answer at each time is the model's reconstruction of the field it was shown. Times are shown in
  windows of the checkpoint's time extent; a stretch of consecutive steps shorter than that (a
  single step, or 6-hourly steps for an hourly model) is shown as a steady state, its last step
  repeated, and only its own steps are kept.
- `forecast`: the checkpoint's forecast question; the last time tokens are hidden and predicted
  from the steps before them (1 h ahead for one-hour tokens), so a step is corrected from the
  IFS steps before it. Steps without that history in the file (the first ones of a run) pass
  through unchanged and are reported; a file in which no step has it is refused.

Grids: the input's points are regridded (regrid.Regridder) onto the part of the checkpoint's grid
that they cover, normalised with the checkpoint's statistics, tiled, asked and stitched by the
engine (engine/question.py). Only the correction, the model's answer minus what it was shown, is
regridded back onto the input's points and added to the input: the round trip's interpolation
error never touches the field itself, and where the model changes nothing neither does the
correction.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np

from atmorep_core.engine.engine import Predictor, Progress, Selector
from atmorep_core.engine.members import progress_part
from atmorep_core.engine.question import Question, StoreFields, read_store_fields, tile_domain
from atmorep_core.engine.tiling import Area, Tiling, area_from_bounds
from atmorep_core.engine.trained import TrainedModel
from atmorep_core.errors import ConfigError, InputDataError, MissingInputError, StoreError
from atmorep_core.grid import LatLonGrid
from atmorep_core.io.grib_messages import read_values
from atmorep_core.io.grib_scan import MessageHeader, scan_headers
from atmorep_core.io.store import Store
from atmorep_core.products.correct_input import Need, Selection, choose_fields, select
from atmorep_core.questions.strategies import ForecastStrategy, IdentityStrategy, MaskingStrategy
from atmorep_core.regrid import Points, Regridder, grid_points, lon_extent

Mode = Literal["denoise", "forecast"]
MODES: tuple[Mode, ...] = ("denoise", "forecast")


@dataclass(frozen=True)
class CorrectRequest:
    """What a user asks for (the CLI's options)."""

    mode: Mode = "denoise"
    fields: tuple[str, ...] = ()  # canonical names to write corrected; () for all of the model's
    batch_size: int = 16
    ensemble: bool = False  # also each of the tail's members, corrected (CRPS, spread)
    allow_implausible: bool = False  # accept values outside their field's plausible range

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"--mode {self.mode!r}: choose from {', '.join(MODES)}")


@dataclass(frozen=True)
class Correction:
    """Corrected values by message index, on the input's own points, and what was done."""

    values: dict[int, np.ndarray]
    messages: dict[int, MessageHeader]  # the corrected messages' headers, by index
    points: Points  # the input's points, in value order
    corrected_times: tuple[datetime, ...]
    uncorrected_times: tuple[datetime, ...]  # forecast mode: steps without history
    levels: dict[str, tuple[int, ...]]  # corrected fields and their levels
    domain: LatLonGrid  # the part of the checkpoint's grid the model answered on
    rms_change: dict[str, float]  # root-mean-square correction per field, physical units
    members: dict[int, np.ndarray] | None = None  # ensemble: (member, point) per message index


@dataclass(frozen=True)
class _Window:
    """One question in time: which input step fills each window time, which answers are kept."""

    source: np.ndarray  # (T,) index of the input time shown at each window time
    times: np.ndarray  # (T,) datetime64[s] the model is told
    answered: np.ndarray  # positions in the answer's time axis that are kept
    targets: np.ndarray  # the input time index of each kept answer


def correct(
    trained: TrainedModel,
    store: Store,
    statistics_store: Store | None,
    source: Path,
    request: CorrectRequest,
    progress: Progress | None = None,
    predictor: Predictor | None = None,
) -> Correction:
    """Correct the GRIB file `source`; `store` gives the checkpoint's grid and time step, and
    `predictor` defaults to the trained model (tests pass others)."""
    configs = {f.name: f for f in trained.config.fields}
    wanted = choose_fields(list(configs), request.fields)
    layout = read_store_fields(store, configs)
    needs = {n: Need(layout.meta[n].level_type, tuple(f.levels)) for n, f in configs.items()}
    selection = select(
        source, scan_headers(source), needs, allow_implausible=request.allow_implausible
    )
    tiling, rows, columns = _domain(layout.grid, selection.points, trained.extent[1:])
    model_points = grid_points(tiling.grid)
    to_model = Regridder(selection.points, model_points)
    raw = {n: _read(selection, n, f.levels) for n, f in configs.items()}  # (L, times, points)
    shown = {n: to_model(v).reshape(*v.shape[:2], *tiling.grid.shape) for n, v in raw.items()}
    strategy, windows, uncorrected = _plan(trained, layout, selection, request.mode)
    question = Question.over(
        trained, predictor or trained.model, strategy, tiling, statistics_store, (rows, columns)
    )
    heads = max(f.tail_heads for f in configs.values())
    selectors = [None, *(range(heads) if request.ensemble else ())]  # the mean, then members
    answers = _answers(question, shown, windows, request.batch_size, progress, selectors)
    changes = [{n: a[n] - shown[n] for n in wanted} for a in answers]  # each (L, times, R, C)
    back = Regridder(model_points, selection.points)
    levels = {n: tuple(configs[n].levels) for n in wanted}
    # Accumulations (precipitation) never become negative, whatever the model answers.
    nonnegative = {n for n in wanted if layout.meta[n].accumulation_s is not None}
    done = [i for i, t in enumerate(selection.times) if t not in uncorrected]
    corrected = [
        _corrected(raw, change, back, done, nonnegative) for change in changes
    ]  # each field -> (L, k, points)
    correction = _correction(
        selection, corrected[0], changes[0], done, levels, uncorrected, tiling.grid
    )
    if not request.ensemble:
        return correction
    members = {n: np.stack([c[n] for c in corrected[1:]]) for n in wanted}  # (E, L, k, points)
    return replace(correction, members=_by_message(selection, members, done, levels, axis=1))


def _answers(
    question: Question,
    shown: dict[str, np.ndarray],
    windows: list[_Window],
    batch_size: int,
    progress: Progress | None,
    selectors: list[Selector],
) -> list[dict[str, np.ndarray]]:
    """Per selector (None: the ensemble mean, i: member i) and field the (L, times, R, C)
    physical answers at the windows' target times."""
    answers = [{n: np.full_like(v, np.nan) for n, v in shown.items()} for _ in selectors]
    for number, window in enumerate(windows):
        window_shown = {n: v[:, window.source] for n, v in shown.items()}
        part = progress_part(progress, number, len(windows), "window")
        asked = question.answer(
            window_shown, window.times, window.answered, selectors, batch_size, part
        )
        for answer, into in zip(asked, answers, strict=True):
            for n, values in answer.items():
                into[n][:, window.targets] = values
    return answers


def _read(selection: Selection, name: str, levels: tuple[int, ...]) -> np.ndarray:
    """(level, time, point) float64 values of one field as the input holds them."""
    return np.stack(
        [
            np.stack(
                [
                    read_values(selection.path, selection.message(name, lv, t))
                    for t in selection.times
                ]
            )
            for lv in levels
        ]
    )


def _domain(
    grid: LatLonGrid, points: Points, extent: tuple[int, int]
) -> tuple[Tiling, slice, np.ndarray]:
    """Tiles over the part of `grid` the points cover, and its rows and columns in `grid`."""
    area = _covered(grid, points)
    lat_first = float(grid.lat_axis[area.row_start])
    if area.cols == grid.nlon:  # all round the globe: the tiles wrap
        columns = np.arange(grid.nlon)
    else:
        columns = (area.col_start + np.arange(area.cols)) % grid.nlon
    lon_first = grid.lon_first + grid.lon_step * int(columns[0])
    # replace: a rotated grid keeps its pole
    part = replace(grid, lat_first=lat_first, nlat=area.rows, lon_first=lon_first, nlon=area.cols)
    return tile_domain(part, extent), slice(area.row_start, area.row_stop), columns


def _covered(grid: LatLonGrid, points: Points) -> Area:
    """The rows and columns of `grid` inside the points' area; a grid reaching within about a
    row of a pole (a Gaussian grid) covers the pole."""
    spacing = points.spacing_deg()
    north, south = float(points.lats.max()), float(points.lats.min())
    north = 90.0 if north > 90.0 - 1.5 * spacing else north
    south = -90.0 if south < -90.0 + 1.5 * spacing else south
    west, span = lon_extent(points.lons)
    try:
        return area_from_bounds(grid, (north, west, south, west + span))
    except ConfigError:
        raise InputDataError(
            f"the input ({north:g}/{west:g}/{south:g}/{west + span:g}) lies outside the "
            f"checkpoint's grid ({grid.describe()})"
        ) from None


def _plan(
    trained: TrainedModel, layout: StoreFields, selection: Selection, mode: Mode
) -> tuple[MaskingStrategy, list[_Window], tuple[datetime, ...]]:
    """The strategy, the windows, and the input times left uncorrected."""
    step = _time_step(layout, trained)
    times = np.array(selection.times, dtype="datetime64[s]")
    runs = _runs(times, step)
    window = trained.extent[0]
    if mode == "denoise":
        windows = [w for run in runs for w in _denoise_windows(run, times, step, window)]
        return IdentityStrategy(), windows, ()
    time_tokens = trained.forecast_time_tokens()
    given = window - time_tokens * trained.config.fields[0].token_size[0]
    if given < 1:
        raise ConfigError(
            f"--mode forecast: the checkpoint sees {window} time step(s) and forecasts "
            f"{window - given}: no step is left to forecast from (one time step models denoise)"
        )
    windows = [w for run in runs for w in _forecast_windows(run, times, step, window, given)]
    if not windows:
        raise MissingInputError(_no_history(selection, given, step))
    done = {int(i) for w in windows for i in w.targets}
    left = tuple(t for i, t in enumerate(selection.times) if i not in done)
    return ForecastStrategy(time_tokens=time_tokens), windows, left


def _time_step(layout: StoreFields, trained: TrainedModel) -> np.timedelta64:
    steps = {layout.time_steps[f.name] for f in trained.config.fields}
    step = steps.pop() if len(steps) == 1 else None
    if step is None and trained.extent[0] == 1:
        return np.timedelta64(1, "h")  # a model of single times: any steps are independent
    if step is None:
        raise StoreError(f"{layout.path}: the model's fields need one regular time step")
    return step


def _runs(times: np.ndarray, step: np.timedelta64) -> list[np.ndarray]:
    """Indices of stretches of consecutive times `step` apart."""
    breaks = np.flatnonzero(np.diff(times) != step) + 1
    return np.split(np.arange(len(times)), breaks)


def _denoise_windows(
    run: np.ndarray, times: np.ndarray, step: np.timedelta64, length: int
) -> list[_Window]:
    """Back-to-back windows over a run, the last one ending at the run's end (later windows
    overwrite the steps they share with earlier ones)."""
    if len(run) <= length:  # a steady state: the last step repeated
        source = np.concatenate([run, np.full(length - len(run), run[-1])])
        window_times = times[run[0]] + step * np.arange(length)
        return [_Window(source, window_times, np.arange(len(run)), run)]
    starts = list(range(0, len(run) - length + 1, length))
    if starts[-1] + length < len(run):
        starts.append(len(run) - length)
    return [
        _Window(
            run[s : s + length], times[run[s : s + length]], np.arange(length), run[s : s + length]
        )
        for s in starts
    ]


def _forecast_windows(
    run: np.ndarray, times: np.ndarray, step: np.timedelta64, length: int, given: int
) -> list[_Window]:
    """Windows whose `given` first times are real steps; hidden times past the run's end are
    shown its last step (hidden, so never seen) and their answers dropped."""
    windows = []
    for start in range(0, len(run) - given, length - given):
        position = np.minimum(start + np.arange(length), len(run) - 1)
        real = np.flatnonzero(start + np.arange(given, length) < len(run))
        window_times = times[run[start]] + step * np.arange(length)
        windows.append(_Window(run[position], window_times, real, run[start + given + real]))
    return windows


def _no_history(selection: Selection, given: int, step: np.timedelta64) -> str:
    hours = step / np.timedelta64(1, "h")
    shown = ", ".join(f"{t:%Y-%m-%dT%H}" for t in selection.times[:6])
    more = " ..." if len(selection.times) > 6 else ""
    return (
        f"{selection.path.name}: --mode forecast needs {given} consecutive steps {hours:g} h "
        f"apart before a corrected step; the file has valid times {shown}{more}"
    )


def _corrected(
    raw: dict[str, np.ndarray],
    changes: dict[str, np.ndarray],
    back: Regridder,
    done: list[int],
    nonnegative: set[str],
) -> dict[str, np.ndarray]:
    """Per field the input plus the regridded-back change at the corrected times (L, k, points)."""
    result = {}
    for name, change in changes.items():
        change = change[:, done]  # (L, k, R, C)
        values = raw[name][:, done] + back(change.reshape(*change.shape[:2], -1))
        result[name] = np.maximum(values, 0.0) if name in nonnegative else values
    return result


def _by_message(
    selection: Selection,
    values: dict[str, np.ndarray],
    done: list[int],
    levels: dict[str, tuple[int, ...]],
    axis: int = 0,
) -> dict[int, np.ndarray]:
    """Values (level and time on `axis`, `axis` + 1) keyed by the index of their message."""
    found = {}
    for name, field in values.items():
        field = np.moveaxis(field, (axis, axis + 1), (0, 1))  # (L, k, ...)
        for li, level in enumerate(levels[name]):
            for ti, index in enumerate(done):
                found[selection.message(name, level, selection.times[index]).index] = field[li, ti]
    return found


def _correction(
    selection: Selection,
    corrected: dict[str, np.ndarray],
    changes: dict[str, np.ndarray],
    done: list[int],
    levels: dict[str, tuple[int, ...]],
    uncorrected: tuple[datetime, ...],
    domain: LatLonGrid,
) -> Correction:
    """The corrected fields (L, k, points) by message, and what was done."""
    values = _by_message(selection, corrected, done, levels)
    messages = {m.index: m for m in selection.messages.values() if m.index in values}
    rms = {n: float(np.sqrt(np.mean(c[:, done] ** 2))) for n, c in changes.items()}
    corrected_times = tuple(selection.times[i] for i in done)
    return Correction(
        values, messages, selection.points, corrected_times, uncorrected, levels, domain, rms
    )
