"""How much closer to a reference a correction came: RMSE of the input and of the corrected
field against a truth store, over every corrected message, on the input's own points.

The truth is regridded onto the input's points (an identity where the grids coincide, as for the
embedded sample's IFS-like companion and its reference store). Scores are grouped per field, per
field and level, and per step (lead); `ratio` is the corrected RMSE over the raw one (below 1:
the correction helped).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from atmorep_core.engine.inputs import read_window
from atmorep_core.fields import from_grib
from atmorep_core.io.grib_messages import read_values
from atmorep_core.io.store import Store
from atmorep_core.products.correct import Correction
from atmorep_core.regrid import Regridder, grid_points


def score_against(
    truth: Store, source: Path, correction: Correction
) -> dict[str, dict[str, float]]:
    """Per group (field, "field level", "lead NNh") the raw and corrected RMSE and their ratio."""
    to_input = Regridder(grid_points(truth.grid), correction.points)
    squared: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for index, message in correction.messages.items():
        name = from_grib(message.short_name, message.param_id).name
        reference = to_input(truth_field(truth, name, message.level, message.valid_time).ravel())
        raw = read_values(source, message)
        pair = (_mse(raw, reference), _mse(correction.values[index], reference))
        for group in (name, f"{name} {message.level}", f"lead {message.step_hours:03d}h"):
            squared[group].append(pair)
    return {group: _rmse(pairs) for group, pairs in sorted(squared.items())}


def truth_field(truth: Store, name: str, level: int, time: np.datetime64) -> np.ndarray:
    """(lat, lon) truth of one field, level and valid time over the whole truth grid."""
    times = np.array([time], dtype="datetime64[s]")
    whole = slice(0, truth.grid.nlat), np.arange(truth.grid.nlon)
    return read_window(truth, name, (level,), times, *whole)[0, 0]


def _mse(values: np.ndarray, reference: np.ndarray) -> float:
    return float(np.mean((values.astype(np.float64) - reference) ** 2))


def _rmse(pairs: list[tuple[float, float]]) -> dict[str, float]:
    raw, corrected = (float(np.mean([p[i] for p in pairs])) for i in (0, 1))
    return {
        "rmse_raw": float(np.sqrt(raw)),
        "rmse_corrected": float(np.sqrt(corrected)),
        "ratio": float(np.sqrt(corrected / raw)) if raw > 0 else float("nan"),
    }
