"""How close a bias correction came to the observations, beside the statistical baselines.

Scores every corrected message on the input's own points against an observation store (regridded
onto those points, an identity where the grids coincide): the raw input, the model (RMSE of its
ensemble mean, fair CRPS of its members) and the two baselines of `evaluation/bias_baselines.py`
(per-point mean bias and empirical quantile mapping; a single value's CRPS is its absolute error).
The baselines are fitted on the pairs the checkpoint was trained on: its input store against its
target store over its training window, regridded onto the same points, so all four columns have
seen the same data.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from atmorep_core.engine.inputs import read_window
from atmorep_core.engine.trained import TrainedModel
from atmorep_core.errors import ConfigError
from atmorep_core.evaluation.bias_baselines import BIAS_METHODS, correct_bias
from atmorep_core.evaluation.correct_score import truth_field
from atmorep_core.evaluation.metrics import crps_ensemble
from atmorep_core.fields import from_grib
from atmorep_core.io.grib_messages import read_values
from atmorep_core.io.grib_scan import MessageHeader
from atmorep_core.io.store import Store
from atmorep_core.products.correct import Correction
from atmorep_core.regrid import Points, Regridder, grid_points

COLUMNS = ("raw", "model", *BIAS_METHODS)


def paired_stores(trained: TrainedModel) -> tuple[Path, Path]:
    """The input and target stores a bias-correction checkpoint was trained on; ConfigError if it
    was not trained against a target (`data.target` in its recipe)."""
    data = trained.recipe.get("data") or {}
    if not data.get("target"):
        raise ConfigError(
            f"--checkpoint {trained.folder}: not trained against observations; train with a "
            "recipe whose data.target names the observation store (recipes/t2m-bias.yaml)"
        )
    return Path(data["store"]), Path(data["target"])


def score_bias(
    trained: TrainedModel, obs: Store, source: Path, correction: Correction
) -> dict[str, dict[str, float]]:
    """Per field and per "field level": RMSE and CRPS of each column of `COLUMNS`."""
    if correction.members is None:
        raise ValueError("scoring a bias correction needs its members (ensemble=True)")
    to_input = Regridder(grid_points(obs.grid), correction.points)
    groups: dict[tuple[str, int], list[MessageHeader]] = defaultdict(list)
    for message in correction.messages.values():
        groups[(_name(message), message.level)].append(message)
    fits = _TrainingPairs(trained, correction.points)
    errors: dict[str, dict[str, list[np.ndarray]]] = defaultdict(lambda: defaultdict(list))
    for (name, level), messages in sorted(groups.items()):
        truth = np.stack(
            [to_input(truth_field(obs, name, level, m.valid_time).ravel()) for m in messages]
        )  # (k, points)
        raw = np.stack([read_values(source, m) for m in messages])
        values = {
            "raw": raw,
            "model": np.stack([correction.values[m.index] for m in messages]),
            **fits.baselines(name, level, raw),
        }
        members = np.stack([correction.members[m.index] for m in messages], axis=1)  # (E, k, P)
        for column, found in values.items():
            # A single value's CRPS is its absolute error; the model's comes from its members.
            crps = crps_ensemble(members, truth) if column == "model" else np.abs(found - truth)
            for group in (name, f"{name} {level}"):
                errors[group][f"{column}_se"].append(((found - truth) ** 2).ravel())
                errors[group][f"{column}_crps"].append(crps.ravel())
    return {group: _summary(found) for group, found in errors.items()}


class _TrainingPairs:
    """The checkpoint's training pairs on the input's points (each field and level read once,
    when its baselines are fitted)."""

    def __init__(self, trained: TrainedModel, points: Points) -> None:
        store, target = paired_stores(trained)
        self.input, self.target = Store.open(store), Store.open(target)
        self.window = ((trained.recipe.get("data") or {}).get("train")) or None
        self.to_points = Regridder(grid_points(self.input.grid), points)

    def baselines(self, name: str, level: int, new: np.ndarray) -> dict[str, np.ndarray]:
        """`new` (k, points) corrected by every baseline, all fitted on one read of the pairs."""
        biased, truth = self._pairs(name, level)
        period = self.input.field(name).meta.accumulation_s
        return {m: correct_bias(m, truth, biased, new, name, period) for m in BIAS_METHODS}

    def _pairs(self, name: str, level: int) -> tuple[np.ndarray, np.ndarray]:
        times = np.intersect1d(self.input.field(name).times, self.target.field(name).times)
        if self.window is not None:
            first, last = (np.datetime64(str(t)[:19], "s") for t in self.window)
            times = times[(times >= first) & (times <= last)]
        whole = slice(0, self.input.grid.nlat), np.arange(self.input.grid.nlon)
        pairs = []
        for store in (self.input, self.target):
            values = read_window(store, name, (level,), times, *whole)[0]  # (T, lat, lon)
            pairs.append(self.to_points(values.reshape(len(times), -1).astype(np.float64)))
        return pairs[0], pairs[1]


def _summary(found: dict[str, list[np.ndarray]]) -> dict[str, float]:
    row = {}
    for column in COLUMNS:
        row[f"rmse_{column}"] = float(np.sqrt(np.mean(np.concatenate(found[f"{column}_se"]))))
        row[f"crps_{column}"] = float(np.mean(np.concatenate(found[f"{column}_crps"])))
    return row


def _name(message: MessageHeader) -> str:
    return from_grib(message.short_name, message.param_id).name


def describe(score: dict[str, dict[str, float]]) -> list[str]:
    """One line per field (not per level): RMSE and CRPS of every column."""
    lines = []
    for group, row in score.items():
        if " " in group:
            continue
        parts = [f"{c} {row[f'rmse_{c}']:.4g} / {row[f'crps_{c}']:.4g}" for c in COLUMNS]
        lines.append(f"{group} RMSE / CRPS against the observations: " + ", ".join(parts))
    return lines
