"""Temporal interpolation: the steps an input lacks (missing hours, whole days, or the hours
between 3- or 6-hourly steps) filled with the model's answers, at the model's time step.

The question is the one the model was trained with: time-token slices without input are hidden
(`InterpolationStrategy`), the others shown, over windows of the model's time extent that start
or end at a given step (`time_windows.py`). Given steps are copied through unchanged, bit for
bit; the model fills only the others. A step farther than the model's window minus one slice
from every given step cannot be filled: a MissingInputError names it.

`reconstruct` asks instead for every step from the given ones (`IdentityStrategy`, nothing
hidden): the factual run of a counterfactual reconstruction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from atmorep_core.engine.alpha import AlphaChange
from atmorep_core.engine.domain import Bounds, Domain, provenance
from atmorep_core.engine.engine import Predictor, Progress
from atmorep_core.engine.members import draw_heads
from atmorep_core.engine.series import InputSeries
from atmorep_core.engine.time_windows import (
    TimeQuestion,
    TimeTokens,
    Window,
    ask_windows,
    cover_windows,
    gap_windows,
)
from atmorep_core.engine.trained import TrainedModel
from atmorep_core.errors import ConfigError, MissingInputError
from atmorep_core.io.product import Product
from atmorep_core.io.store import Store

HOUR = np.timedelta64(3600, "s")
_SHOWN = 6  # times named in an error before "and N more"


@dataclass(frozen=True)
class InterpolationRequest:
    """What a user asks for (the CLI's options)."""

    start: datetime  # first output time, naive UTC
    end: datetime  # last output time (inclusive)
    input_every_hours: int | None = None  # only input times on this interval are given
    members: int = 1
    seed: int = 0
    area: Bounds | None = None  # None: the whole grid
    batch_size: int = 16
    reconstruct: bool = False  # every step from the model, nothing hidden (counterfactuals)
    alpha: AlphaChange = field(default_factory=AlphaChange)  # counterfactual: changed alpha


@dataclass(frozen=True)
class Axis:
    """The model's steps from a window before the start to a window after the end."""

    times: np.ndarray  # (A,) datetime64[s]
    given: np.ndarray  # (A,) bool: every field has input there
    wanted: range  # the output's steps on the axis

    @property
    def hours(self) -> tuple[int, ...]:
        """The output's steps in hours after the start."""
        offsets = self.times[self.wanted.start : self.wanted.stop] - self.times[self.wanted.start]
        return tuple(int(h) for h in offsets // HOUR)


def interpolate(
    trained: TrainedModel,
    inputs: InputSeries,
    statistics_store: Store | None,
    request: InterpolationRequest,
    progress: Progress | None = None,
    predictor: Predictor | None = None,
) -> Product:
    """The interpolation product; `predictor` defaults to the trained model (tests pass others)."""
    domain = Domain.of(trained, inputs.first, request.area, statistics_store)
    time = TimeTokens.of(domain.configs)
    axis = plan_axis(inputs, request, time, model_step(trained), tuple(domain.configs))
    raw, values = _read_given(inputs, domain, axis)
    windows = (cover_windows if request.reconstruct else gap_windows)(axis.given, axis.wanted, time)
    heads = draw_heads(request.members, len(windows), request.seed, trained)
    question = TimeQuestion(
        predictor or trained.model, domain, request.members, request.batch_size, request.alpha
    )
    _check_covered(axis, windows, request.reconstruct, time)
    blend = ask_windows(question, values, axis.times, windows, heads, progress)
    outputs = {
        name: _output(domain, name, answer, raw[name], axis, request)
        for name, answer in blend.result().items()
    }
    fields = tuple(domain.product_field(inputs.first, name, v) for name, v in outputs.items())
    attributes = {
        **provenance(trained, inputs.paths, request.members, request.seed),
        "given_steps_hours": _given_hours(axis, request.reconstruct),
    }
    start = request.start.replace(tzinfo=None)
    return Product(start, axis.hours, fields, "interpolation", attributes)


def model_step(trained: TrainedModel) -> np.timedelta64:
    """The time step the model learned on: its training store's, else ERA5's hour."""
    path = trained.training_store
    if not (path / "zarr.json").exists():
        return HOUR
    store = Store.open(path)
    name = trained.config.fields[0].name
    step = store.field(name).time_step if name in store.fields else None
    return HOUR if step is None else step


def plan_axis(
    inputs: InputSeries,
    request: InterpolationRequest,
    time: TimeTokens,
    step: np.timedelta64,
    names: tuple[str, ...],
) -> Axis:
    """The output's steps with a window's context either side, and where input is given."""
    start = np.datetime64(request.start.replace(tzinfo=None), "s")
    context = time.window - 1
    count = output_count(request, step)
    times = start + step * np.arange(-context, count + context)
    given = np.ones(len(times), dtype=bool)
    for name in names:
        given &= np.isin(times, inputs.times(name))
    if request.input_every_hours is not None:
        given &= _on_interval(times, request.input_every_hours)
    return Axis(times, given, range(context, context + count))


def output_count(request: InterpolationRequest, step: np.timedelta64) -> int:
    """The output's steps from start to end; ConfigError unless they are whole steps apart."""
    start, end = (np.datetime64(t.replace(tzinfo=None), "s") for t in (request.start, request.end))
    if end < start or (end - start) % step or step % HOUR:
        raise ConfigError(
            f"--start {start} / --end {end}: need start <= end, a whole number of the model's "
            f"steps ({step / HOUR:g} h, whole hours) apart"
        )
    return int((end - start) // step) + 1


def check_interval(hours: int | None) -> None:
    """ConfigError unless --input-every is unset or a positive number of hours."""
    if hours is not None and hours <= 0:
        raise ConfigError(f"--input-every {hours}h: a positive number of hours")


def _on_interval(times: np.ndarray, hours: int) -> np.ndarray:
    check_interval(hours)
    seconds = times.astype("datetime64[s]").astype(np.int64)
    return seconds % (hours * 3600) == 0


def _read_given(
    inputs: InputSeries, domain: Domain, axis: Axis
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per field the physical (L, given, R, C) input and the normalised (L, A, R, C) values."""
    times = axis.times[axis.given]
    raw = {name: inputs.read(domain, name, times) for name in domain.configs}
    values = {
        name: _on_axis(domain.statistics[name].normalise(v, times), axis.given)
        for name, v in raw.items()
    }
    return raw, values


def _on_axis(values: np.ndarray, given: np.ndarray) -> np.ndarray:
    """(L, G, R, C) values at the given steps -> (L, A, R, C), zeros elsewhere (hidden)."""
    full = np.zeros((values.shape[0], len(given), *values.shape[2:]), dtype=np.float32)
    full[:, given] = values
    return full


def _check_covered(
    axis: Axis, windows: Sequence[Window], reconstruct: bool, time: TimeTokens
) -> None:
    """MissingInputError naming the wanted steps that no window predicts (nor the input has)."""
    covered = np.zeros(len(axis.times), dtype=bool)
    for window in windows:
        covered[window.steps(time)] = True
    wanted = np.zeros(len(axis.times), dtype=bool)
    wanted[axis.wanted.start : axis.wanted.stop] = True
    done = covered if reconstruct else covered | axis.given
    lacking = axis.times[wanted & ~done]
    if lacking.size == 0:
        return
    named = ", ".join(str(t)[:16] for t in lacking[:_SHOWN])
    more = f" and {lacking.size - _SHOWN} more" if lacking.size > _SHOWN else ""
    why = (
        f"no {time.window}-step window of given input covers them"
        if reconstruct
        else f"no given step within the model's window ({time.window} steps) either side"
    )
    raise MissingInputError(f"cannot fill {named}{more}: {why}")


def _output(
    domain: Domain,
    name: str,
    answer: np.ndarray,
    raw: np.ndarray,
    axis: Axis,
    request: InterpolationRequest,
) -> np.ndarray:
    """(M, step, L, r, c) physical values of the output steps: the model's answers, and the
    input itself wherever it is given (unless reconstructing)."""
    wanted = slice(axis.wanted.start, axis.wanted.stop)
    physical = domain.statistics[name].denormalise(answer[:, :, wanted], axis.times[wanted])
    if not request.reconstruct:
        steps = np.flatnonzero(axis.given[wanted])  # output steps that are given
        where = np.searchsorted(np.flatnonzero(axis.given), steps + axis.wanted.start)
        physical[:, :, steps] = raw[:, where]
    return domain.in_area(physical).transpose(0, 2, 1, 3, 4)


def _given_hours(axis: Axis, reconstruct: bool) -> str:
    """The output steps copied from the input, as hours after the start (for `evaluate`)."""
    if reconstruct:
        return ""
    given = axis.given[axis.wanted.start : axis.wanted.stop]
    return ",".join(str(h) for h, g in zip(axis.hours, given, strict=True) if g)
