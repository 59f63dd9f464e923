"""Global or regional forecasts: tiles of the trained neighbourhood, stitched, iterated in time.

One iteration shows the model a neighbourhood whose last `time_tokens` time tokens are hidden
(the forecast strategy it was trained with) and stitches its answers over the domain: that
advances the forecast by k = time_tokens x token time steps. Longer leads feed each iteration's
stitched answer back as the newest input, as a forecaster would.

Members (`members.py`): a 1-member product follows the mean over the tail's heads; an ensemble
follows one head per member and iteration, and every member then continues from its own answers
(its own trajectory). `request.alpha` changes the conditioning (counterfactuals).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from atmorep_core.engine.alpha import AlphaChange
from atmorep_core.engine.domain import Bounds, Domain, provenance
from atmorep_core.engine.engine import DomainField, Predictor, Progress, Selector, ask
from atmorep_core.engine.members import draw_heads, progress_part
from atmorep_core.engine.trained import TrainedModel
from atmorep_core.errors import ConfigError, StoreError
from atmorep_core.io.product import Product
from atmorep_core.io.store import Store
from atmorep_core.questions.strategies import ForecastStrategy


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
    alpha: AlphaChange = field(default_factory=AlphaChange)  # counterfactual: changed alpha


@dataclass(frozen=True)
class LeadPlan:
    """The request in the store's time steps."""

    step: np.timedelta64  # the store's time step
    given: int  # input steps per neighbourhood
    ahead: int  # steps one iteration predicts
    lead: int  # steps to forecast
    every: int  # steps between the leads written to the product

    @property
    def keep(self) -> np.ndarray:
        """Lead steps (1-based) written to the product."""
        return np.arange(self.every, self.lead + 1, self.every)

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
    plan = plan_lead(trained, store_step(trained, store), request, strategy.time_tokens)
    domain = Domain.of(trained, store, request.area, statistics_store)
    init = np.datetime64(request.init.replace(tzinfo=None), "s")
    states = [domain.read_normalised(store, plan.input_times(init))] * request.members
    heads = draw_heads(request.members, plan.iterations, request.seed, trained)
    kept: dict[str, list[np.ndarray]] = {name: [] for name in domain.configs}
    for iteration in range(plan.iterations):
        times = plan.window_times(init, iteration)
        states = _advance(
            predictor or trained.model, states, heads[iteration], times, domain, strategy,
            request, progress_part(progress, iteration, plan.iterations, "lead step"),
        )  # fmt: skip
        for name in domain.configs:
            answers = np.stack([s[name][:, -plan.ahead :] for s in states])  # (M, L, k, R, C)
            physical = domain.statistics[name].denormalise(answers, times[-plan.ahead :])
            kept[name].append(domain.in_area(physical))  # (M, L, k, r, c)
    return _product(trained, store, request, plan, domain, kept)


def _advance(
    predictor: Predictor,
    states: list[dict[str, np.ndarray]],
    heads: list[Selector],
    times: np.ndarray,
    domain: Domain,
    strategy: ForecastStrategy,
    request: ForecastRequest,
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
            name: DomainField(domain.configs[name], _with_room(v, ahead))
            for name, v in state.items()
        }
        answers = ask(
            predictor, fields, times, domain.tiling, strategy, selectors, request.batch_size,
            progress,
            request.alpha,
        )  # fmt: skip
        moved += [{name: _shift(state[name], a[name]) for name in state} for a in answers]
    return moved


def _with_room(values: np.ndarray, ahead: int) -> np.ndarray:
    """(L, given, R, C) -> (L, given + ahead, R, C): zeros where the hidden steps go."""
    room = np.zeros((values.shape[0], ahead, *values.shape[2:]), dtype=values.dtype)
    return np.concatenate([values, room], axis=1)


def _shift(state: np.ndarray, answer: np.ndarray) -> np.ndarray:
    """Drop the oldest steps of a (L, given, R, C) state and append the (L, ahead, R, C) answer."""
    return np.concatenate([state[:, answer.shape[1] :], answer], axis=1)


def store_step(trained: TrainedModel, store: Store) -> np.timedelta64:
    """The one regular time step of the model's fields in the store; StoreError if none."""
    steps = {store.field(f.name).time_step for f in trained.config.fields if f.name in store.fields}
    step = steps.pop() if len(steps) == 1 else None
    if step is None:
        raise StoreError(
            f"{store.path}: the model's fields need one regular time step in the store"
        )
    return step


def plan_lead(
    trained: TrainedModel, step: np.timedelta64, request: ForecastRequest, time_tokens: int
) -> LeadPlan:
    """The lead and output interval in steps of `step`; ConfigError unless they are positive
    multiples of it and the time tokens leave input (checked before any work, too)."""
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
    lead, every_steps = int(request.lead_hours // hours), round(every / hours)
    if every_steps > lead:
        raise ConfigError(f"--every {every:g}h: longer than the lead {request.lead_hours} h")
    return LeadPlan(step, window - ahead, ahead, lead, every_steps)


def _product(
    trained: TrainedModel,
    store: Store,
    request: ForecastRequest,
    plan: LeadPlan,
    domain: Domain,
    kept: dict[str, list[np.ndarray]],
) -> Product:
    hours = plan.step / np.timedelta64(1, "h")
    chosen = plan.keep - 1  # 0-based lead steps
    fields = []
    for name in domain.configs:
        values = np.concatenate(kept[name], axis=2)[:, :, : plan.lead]  # (M, L, lead, r, c)
        values = values[:, :, chosen].transpose(0, 2, 1, 3, 4)  # (M, step, L, r, c)
        fields.append(domain.product_field(store, name, values))
    attributes = provenance(trained, str(store.path), request.members, request.seed)
    steps = tuple(round(float(k * hours)) for k in plan.keep)
    return Product(request.init.replace(tzinfo=None), steps, tuple(fields), "forecast", attributes)
