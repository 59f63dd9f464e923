"""The climatology that scores are measured against: per grid point and hour of day, the truth's
mean over a window of times.

The window, unless given: the training window of the checkpoint a product names (when its
folder is still there), so that the baseline knows what the model could have learned and no
more; otherwise every truth time before the earliest product's init, so that it never sees the
times it is scored on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from atmorep_core.evaluation.truth import TruthField, Unavailable

HOURS = 24


@dataclass(frozen=True)
class Window:
    """The times a climatology averages, first and last included, and where they came from."""

    first: np.datetime64 | None  # None: from the truth's start
    last: np.datetime64
    source: str  # "--climatology", "training window of CHECKPOINT", "before the first init"

    def describe(self) -> str:
        first = "the truth's start" if self.first is None else str(self.first)
        return f"{first} .. {self.last} ({self.source})"


def choose_window(
    explicit: tuple[datetime, datetime] | None,
    attributes: Sequence[Mapping[str, str]],
    inits: Sequence[datetime],
) -> Window:
    """The window asked for, else the first named checkpoint's training window, else before."""
    if explicit is not None:
        return Window(_time(explicit[0]), _time(explicit[1]), "--climatology")
    for attrs in attributes:
        trained = training_window(attrs.get("checkpoint"))
        if trained is not None:
            return Window(trained[0], trained[1], f"training window of {attrs['checkpoint']}")
    before = _time(min(inits)) - np.timedelta64(1, "s")
    return Window(None, before, "before the first init")


def training_window(folder: str | None) -> tuple[np.datetime64, np.datetime64] | None:
    """The training window a checkpoint (or run) folder records, if it exists and has one."""
    if not folder or not Path(folder).is_dir():
        return None
    # A run folder's `latest` names its newest checkpoint folder, whose state.json holds the
    # window (model/checkpoint.py): read directly, since that module would import torch and
    # `checkpoint.load` all the weights.
    path = Path(folder)
    try:
        step = path / (path / "latest").read_text().strip() if (path / "latest").exists() else path
        window = json.loads((step / "state.json").read_text())["data_window"].get("train")
    except (OSError, ValueError, KeyError):
        return None
    return None if not window else (np.datetime64(window[0], "s"), np.datetime64(window[1], "s"))


def _time(moment: datetime) -> np.datetime64:
    return np.datetime64(moment.replace(tzinfo=None), "s")


class HourlyMeans:
    """(hour of day, level, lat, lon) means of one truth field; NaN for hours the window lacks."""

    def __init__(self, means: np.ndarray, window: Window) -> None:
        self.means, self.window = means, window

    def at(self, times: np.ndarray) -> np.ndarray:
        """(time, level, lat, lon) climatology at the given valid times."""
        hours = hour_of_day(times)
        lacking = sorted({int(h) for h in hours if np.isnan(self.means[h]).all()})
        if lacking:
            raise Unavailable(
                f"the climatology window {self.window.describe()} has no truth at "
                f"{', '.join(f'{h:02d} UTC' for h in lacking)}"
            )
        return self.means[hours]


class Climatology:
    """Hourly means over one window, computed once per truth field and product region."""

    def __init__(self, window: Window) -> None:
        self.window = window
        self._cache: dict[tuple[object, ...], HourlyMeans] = {}

    def of(self, truth: TruthField) -> HourlyMeans:
        if truth.key not in self._cache:
            self._cache[truth.key] = HourlyMeans(self._means(truth), self.window)
        return self._cache[truth.key]

    def _means(self, truth: TruthField) -> np.ndarray:
        times = truth.times
        inside = times <= self.window.last
        if self.window.first is not None:
            inside &= times >= self.window.first
        index = np.flatnonzero(inside)
        shape = (HOURS, len(truth.levels), len(truth.region.rows), len(truth.region.columns))
        sums, counts = np.zeros(shape), np.zeros(HOURS)
        for part, values in truth.blocks(index):
            hours = hour_of_day(times[part])
            np.add.at(sums, hours, values)
            counts += np.bincount(hours, minlength=HOURS)
        with np.errstate(invalid="ignore"):
            return sums / counts[:, None, None, None]  # NaN where an hour has no time


def hour_of_day(times: np.ndarray) -> np.ndarray:
    return np.asarray(times).astype("datetime64[h]").astype(np.int64) % HOURS
