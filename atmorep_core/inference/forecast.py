"""Global or regional forecasts: tiles of the trained neighbourhood, stitched, iterated in time.

One iteration shows the model a neighbourhood whose last `time_tokens` time tokens are hidden
(the forecast strategy it was trained with) and stitches its answers over the domain: that
advances the forecast by k = time_tokens x token time steps. Longer leads feed each iteration's
stitched answer back as the newest input, as a forecaster would.

Members: a 1-member product follows the mean over the tail's heads (the least-squares forecast).
An ensemble follows one head per member and iteration, drawn from a seeded generator and
stratified so that members take different heads whenever there are at most as many members as
heads; every member then continues from its own answers (its own trajectory).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from atmorep_core.errors import ConfigError, StoreError
from atmorep_core.inference.engine import DomainField, Predictor, Progress, Selector, ask
from atmorep_core.inference.inputs import read_window
from atmorep_core.inference.statistics import FieldStatistics
from atmorep_core.inference.tiling import Tiling, area_from_bounds, tile
from atmorep_core.inference.trained import TrainedModel
from atmorep_core.io.product import Product, ProductField
from atmorep_core.io.store import Store
from atmorep_core.model.config import FieldModelConfig
from atmorep_core.training.strategies import ForecastStrategy

Bounds = tuple[float, float, float, float]  # north, west, south, east in degrees


@dataclass(frozen=True)
class ForecastRequest:
    """What a user asks for (the CLI's options)."""

    init: datetime  # the last input time, naive UTC
    lead_hours: int
    members: int = 1
    seed: int = 0
    area: Bounds | None = None  # None: the whole grid
    time_tokens: int | None = None  # None: as the model was trained (or 1)
    every_hours: int | None = None  # output interval; None: every time step
    batch_size: int = 16


@dataclass(frozen=True)
class _Plan:
    """The request in the store's time steps."""

    step: np.timedelta64  # the store's time step
    given: int  # input steps per neighbourhood
    ahead: int  # steps one iteration predicts
    lead: int  # steps to forecast
    keep: np.ndarray  # lead steps (1-based) written to the product

    @property
    def iterations(self) -> int:
        return math.ceil(self.lead / self.ahead)

    def input_times(self, init: np.datetime64) -> np.ndarray:
        return init + self.step * np.arange(-self.given + 1, 1)

    def window_times(self, init: np.datetime64, iteration: int) -> np.ndarray:
        offset = iteration * self.ahead
        return init + self.step * np.arange(offset - self.given + 1, offset + self.ahead + 1)


def forecast(
    trained: TrainedModel,
    store: Store,
    statistics_store: Store | None,
    request: ForecastRequest,
    progress: Progress | None = None,
    predictor: Predictor | None = None,
) -> Product:
    """The forecast product; `predictor` defaults to the trained model (tests pass others)."""
    strategy = ForecastStrategy(time_tokens=request.time_tokens or trained.forecast_time_tokens())
    plan = _plan(trained, store, request, strategy.time_tokens)
    area = None if request.area is None else area_from_bounds(store.grid, request.area)
    tiling = tile(store.grid, trained.extent[1:], area)
    init = np.datetime64(request.init.replace(tzinfo=None), "s")
    configs = {f.name: f for f in trained.config.fields}
    stats = {
        name: FieldStatistics(
            name, f.levels, trained.normalisation[name], statistics_store, tiling.domain_rows,
            tiling.domain_columns,
        )
        for name, f in configs.items()
    }  # fmt: skip
    states = [_start(store, configs, stats, plan.input_times(init), tiling)] * request.members
    heads = _draw_heads(request.members, plan.iterations, request.seed, trained)
    rows, columns = tiling.area_in_domain()
    kept: dict[str, list[np.ndarray]] = {name: [] for name in configs}
    for iteration in range(plan.iterations):
        times = plan.window_times(init, iteration)
        states = _advance(
            predictor or trained.model, states, heads[iteration], times, tiling, strategy,
            configs, request.batch_size, _part(progress, iteration, plan.iterations),
        )  # fmt: skip
        for name in configs:
            answers = np.stack([s[name][:, -plan.ahead :] for s in states])  # (M, L, k, R, C)
            physical = stats[name].denormalise(answers, times[-plan.ahead :])
            kept[name].append(physical[..., rows, :][..., columns])  # (M, L, k, r, c)
    return _product(trained, store, request, plan, tiling, kept)


def _start(
    store: Store,
    configs: dict[str, FieldModelConfig],
    stats: dict[str, FieldStatistics],
    times: np.ndarray,
    tiling: Tiling,
) -> dict[str, np.ndarray]:
    """The normalised (L, given, R, C) input of every field: what all members start from."""
    domain = (tiling.domain_rows, tiling.domain_columns)
    return {
        name: stats[name].normalise(read_window(store, name, f.levels, times, *domain), times)
        for name, f in configs.items()
    }


def _advance(
    predictor: Predictor,
    states: list[dict[str, np.ndarray]],
    heads: list[Selector],
    times: np.ndarray,
    tiling: Tiling,
    strategy: ForecastStrategy,
    configs: dict[str, FieldModelConfig],
    batch_size: int,
    progress: Progress | None,
) -> list[dict[str, np.ndarray]]:
    """Every member's state moved on by one iteration: oldest steps dropped, answers appended."""
    if all(state is states[0] for state in states):  # one question answered for every member
        groups = [(states[0], heads)]
    else:
        groups = [(state, [head]) for state, head in zip(states, heads, strict=True)]
    moved = []
    for state, selectors in groups:
        ahead = len(times) - next(iter(state.values())).shape[1]
        fields = {
            name: DomainField(configs[name], _with_room(v, ahead)) for name, v in state.items()
        }
        for answer in ask(
            predictor, fields, times, tiling, strategy, selectors, batch_size, progress
        ):
            moved.append({name: _shift(state[name], answer[name]) for name in state})
    return moved


def _with_room(values: np.ndarray, ahead: int) -> np.ndarray:
    """(L, given, R, C) -> (L, given + ahead, R, C): zeros where the hidden steps go."""
    room = np.zeros((values.shape[0], ahead, *values.shape[2:]), dtype=values.dtype)
    return np.concatenate([values, room], axis=1)


def _shift(state: np.ndarray, answer: np.ndarray) -> np.ndarray:
    """Drop the oldest steps of a (L, given, R, C) state and append the (L, ahead, R, C) answer."""
    return np.concatenate([state[:, answer.shape[1] :], answer], axis=1)


def _plan(trained: TrainedModel, store: Store, request: ForecastRequest, time_tokens: int) -> _Plan:
    steps = {store.field(f.name).time_step for f in trained.config.fields if f.name in store.fields}
    step = steps.pop() if len(steps) == 1 else None
    if step is None:
        raise StoreError(
            f"{store.path}: the model's fields need one regular time step in the store"
        )
    hours = step / np.timedelta64(1, "h")
    t = trained.config.fields[0].token_size[0]
    window = trained.extent[0]
    ahead = time_tokens * t
    if ahead >= window:
        raise ConfigError(f"--time-tokens: {time_tokens} leaves no input time step of {window}")
    every = request.every_hours or hours
    if request.lead_hours <= 0 or request.lead_hours % hours or every % hours:
        raise ConfigError(
            f"--lead {request.lead_hours}h / --every {every:g}h: positive multiples of the "
            f"store's time step ({hours:g} h) are needed"
        )
    lead = int(request.lead_hours // hours)
    keep = np.arange(1, lead + 1)
    keep = keep[(keep * hours) % every == 0]
    if keep.size == 0:
        raise ConfigError(f"--every {every:g}h: longer than the lead {request.lead_hours} h")
    return _Plan(step, window - ahead, ahead, lead, keep)


def _draw_heads(
    members: int, iterations: int, seed: int, trained: TrainedModel
) -> list[list[Selector]]:
    """Per iteration the head each member follows (None: the mean, for a single member)."""
    if members < 1:
        raise ConfigError(f"--members: at least 1, got {members}")
    if members == 1:
        return [[None]] * iterations
    heads = min(f.tail_heads for f in trained.config.fields)
    rng = np.random.default_rng(seed)
    plan: list[list[Selector]] = []
    for _ in range(iterations):
        # Stratified: member m takes the head under (perm[m] + u) / members, all heads distinct
        # when members <= heads.
        where = (rng.permutation(members) + rng.random()) / members
        plan.append([int(h) for h in np.floor(where * heads)])
    return plan


def _part(progress: Progress | None, iteration: int, iterations: int) -> Progress | None:
    """A progress callback for one iteration's share of the whole run."""
    if progress is None:
        return None
    return lambda message, fraction: progress(
        f"lead step {iteration + 1}/{iterations}, {message}", (iteration + fraction) / iterations
    )


def _product(
    trained: TrainedModel,
    store: Store,
    request: ForecastRequest,
    plan: _Plan,
    tiling: Tiling,
    kept: dict[str, list[np.ndarray]],
) -> Product:
    hours = plan.step / np.timedelta64(1, "h")
    chosen = plan.keep - 1  # 0-based lead steps
    fields = []
    for f in trained.config.fields:
        values = np.concatenate(kept[f.name], axis=2)[:, :, : plan.lead]  # (M, L, lead, r, c)
        values = values[:, :, chosen].transpose(0, 2, 1, 3, 4)  # (M, step, L, r, c)
        level_type = store.field(f.name).meta.level_type
        fields.append(ProductField(f.name, level_type, f.levels, tiling.area_grid(), values))
    attributes = {
        "checkpoint": str(trained.folder),
        "checkpoint_step": str(trained.step),
        "input_store": str(store.path),
        "members": str(request.members),
        "seed": str(request.seed),
    }
    steps = tuple(round(float(k * hours)) for k in plan.keep)
    return Product(request.init.replace(tzinfo=None), steps, tuple(fields), "forecast", attributes)
