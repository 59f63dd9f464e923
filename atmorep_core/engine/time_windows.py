"""Ask a model about a time axis longer than its neighbourhood: windows of it, blended in time.

The model sees T = n_t x t steps at once (n_t time-token slices of t steps). A product over a
longer axis asks one question per window of T steps and blends the answers where windows
overlap, with Hann weights along time (largest mid-window, where the model has context on both
sides), as the tiles are blended in space.

- Gaps (temporal interpolation): a slice whose steps are all given is shown, every other slice
  is hidden and predicted (`InterpolationStrategy`). Windows start or end at a given step, as
  in training, where the first and last slices of a 3-hourly window are given ones.
- Cover (reconstruction): windows of given steps only, every slice shown and predicted
  (`IdentityStrategy`), half a window apart.

Shapes: values (level, A, R, C) normalised over the domain for the A steps of the axis (zeros
where nothing is given); blended answers (member, level, A, R, C).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from atmorep_core.engine.alpha import AlphaChange
from atmorep_core.engine.domain import Domain
from atmorep_core.engine.engine import DomainField, Predictor, Progress, Selector, ask
from atmorep_core.engine.members import progress_part
from atmorep_core.engine.tiling import hann
from atmorep_core.errors import ConfigError
from atmorep_core.model.config import FieldModelConfig
from atmorep_core.questions.strategies import (
    IdentityStrategy,
    InterpolationStrategy,
    MaskingStrategy,
)


@dataclass(frozen=True)
class TimeTokens:
    """The model's time layout, the same for every field: n_t slices of t steps."""

    slices: int  # n_t
    steps: int  # t

    @classmethod
    def of(cls, configs: Mapping[str, FieldModelConfig]) -> TimeTokens:
        layouts = {(c.token_count[0], c.token_size[0]) for c in configs.values()}
        if len(layouts) != 1:
            raise ConfigError(f"model: fields with different time tokens {sorted(layouts)}")
        return cls(*layouts.pop())

    @property
    def window(self) -> int:
        return self.slices * self.steps


@dataclass(frozen=True)
class Window:
    """One question: the window's first step on the axis and the slices the model answers."""

    start: int
    predicted: tuple[int, ...]  # time-token slices, ascending

    def strategy(self, time: TimeTokens) -> MaskingStrategy:
        if len(self.predicted) == time.slices:
            return IdentityStrategy()
        return InterpolationStrategy(time_slices=self.predicted)

    def steps(self, time: TimeTokens) -> np.ndarray:
        """Axis indices of the predicted steps, in the order the engine answers them."""
        offsets = np.add.outer(
            np.array(self.predicted, dtype=int) * time.steps, np.arange(time.steps)
        )
        return self.start + offsets.ravel()


def gap_windows(given: np.ndarray, wanted: range, time: TimeTokens) -> list[Window]:
    """Windows that start or end at a given step, show its given slices and predict the others,
    and predict at least one wanted step that is not given; `given` (A,) bool over the axis."""
    starts = np.flatnonzero(given)
    candidates = sorted({*starts, *(starts - time.window + 1)})
    found = []
    for start in candidates:
        if 0 <= start <= len(given) - time.window:
            shown = given[start : start + time.window].reshape(time.slices, time.steps).all(axis=1)
            window = Window(int(start), tuple(int(k) for k in np.flatnonzero(~shown)))
            if shown.any() and _needed(window, given, wanted, time):
                found.append(window)
    return found


def cover_windows(given: np.ndarray, wanted: range, time: TimeTokens) -> list[Window]:
    """Windows of given steps only, half a window apart, over the wanted steps."""
    stride = max(1, time.window // 2)
    starts = {*range(wanted.start - time.window + stride, wanted.stop, stride)}
    starts |= {wanted.start, wanted.stop - time.window}
    everything = tuple(range(time.slices))
    return [
        Window(start, everything)
        for start in sorted(starts)
        if 0 <= start <= len(given) - time.window and given[start : start + time.window].all()
    ]


def _needed(window: Window, given: np.ndarray, wanted: range, time: TimeTokens) -> bool:
    steps = window.steps(time)
    inside = steps[(steps >= wanted.start) & (steps < wanted.stop)]
    return bool((~given[inside]).any())


class TimeBlend:
    """Accumulates windows' answers per member, weighted along time, over the whole axis."""

    def __init__(self, values: Mapping[str, np.ndarray], members: int, time: TimeTokens) -> None:
        self.time = time
        self.total = {
            name: np.zeros((members, *v.shape), dtype=np.float64) for name, v in values.items()
        }  # (M, L, A, R, C)
        self.weight = np.zeros(next(iter(values.values())).shape[1])  # (A,)
        self.window_weight = hann(time.window)

    def add(self, window: Window, answers: Sequence[Mapping[str, np.ndarray]]) -> None:
        """One window's answers, one mapping field -> (L, k*t, R, C) per member."""
        steps = window.steps(self.time)
        weight = self.window_weight[steps - window.start]  # (k*t,)
        for member, answer in enumerate(answers):
            for name, values in answer.items():
                self.total[name][member][:, steps] += values * weight[:, None, None]
        self.weight[steps] += weight

    def result(self) -> dict[str, np.ndarray]:
        """Per field (M, L, A, R, C) float32; NaN at steps no window predicted."""
        with np.errstate(invalid="ignore", divide="ignore"):
            scale = np.where(self.weight > 0, 1.0 / self.weight, np.nan)[:, None, None]
        return {name: (total * scale).astype(np.float32) for name, total in self.total.items()}


@dataclass(frozen=True)
class TimeQuestion:
    """What every window is asked with: the model, the domain and the conditioning."""

    predictor: Predictor
    domain: Domain
    members: int
    batch_size: int
    alpha: AlphaChange | None = None


def ask_windows(
    question: TimeQuestion,
    values: Mapping[str, np.ndarray],
    times: np.ndarray,
    windows: Sequence[Window],
    heads: Sequence[Sequence[Selector]],
    progress: Progress | None = None,
) -> TimeBlend:
    """Every window asked (member m of window w following heads[w][m]) and blended."""
    time = TimeTokens.of(question.domain.configs)
    blend = TimeBlend(values, question.members, time)
    for index, (window, selectors) in enumerate(zip(windows, heads, strict=True)):
        span = slice(window.start, window.start + time.window)
        fields = {
            name: DomainField(question.domain.configs[name], v[:, span])
            for name, v in values.items()
        }
        answers = ask(
            question.predictor, fields, times[span], question.domain.tiling,
            window.strategy(time), selectors, question.batch_size,
            progress_part(progress, index, len(windows), "window"), question.alpha,
        )  # fmt: skip
        blend.add(window, answers)
    return blend
