"""Bias-correction baselines on the real ERA5 2 m temperature sample with a state-dependent bias.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/skill_bias.py

The "model" is the truth plus a bias that follows the diurnal cycle and grows with the anomaly
from the training window's mean per grid point and hour of day:

    biased = truth + 0.8 K + 0.7 K * cos(2 pi (hour - 15) / 24) + 0.4 * anomaly

Both baselines of `atmorep_core/evaluation/bias_baselines.py` (ibicus: mean bias per grid point,
empirical quantile mapping per grid point) are fitted on 1-19 March and applied to 20-24 March;
RMSE and MAE (a single value's CRPS) against the unbiased truth, every hour and grid point.
Writes `benchmarks/results/skill_bias.json`; BENCHMARKS.md has the table.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from skill_t2m import REAL_SAMPLE, ensure_store

from atmorep_core.evaluation.bias_baselines import BIAS_METHODS, correct_bias
from atmorep_core.io.store import Store

STORE = Path("skill-t2m/t2m.zarr")
RESULTS = Path("benchmarks/results/skill_bias.json")
LAST_TRAINING_HOUR = np.datetime64("2019-03-19T23")


def biased_sample(truth: np.ndarray, times: np.ndarray, train: np.ndarray) -> np.ndarray:
    hours = times.astype("datetime64[h]").astype(np.int64) % 24
    means = np.stack([truth[train & (hours == h)].mean(axis=0) for h in range(24)])
    diurnal = 0.7 * np.cos(2 * np.pi * (hours - 15) / 24)[:, None, None]
    return truth + 0.8 + diurnal + 0.4 * (truth - means[hours])


def scores(values: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    error = values - truth
    return {"rmse": float(np.sqrt(np.mean(error**2))), "crps": float(np.mean(np.abs(error)))}


def main() -> None:
    ensure_store(REAL_SAMPLE, STORE)
    arrays = Store.open(STORE).field("t2m")
    truth = np.asarray(arrays.data[...], dtype=np.float64)[:, 0]
    train = arrays.times <= LAST_TRAINING_HOUR
    biased = biased_sample(truth, arrays.times, train)
    result = {"raw": scores(biased[~train], truth[~train])}
    for method in BIAS_METHODS:
        started = time.perf_counter()
        corrected = correct_bias(method, truth[train], biased[train], biased[~train], "t2m")
        result[method] = scores(corrected, truth[~train]) | {
            "seconds": round(time.perf_counter() - started, 2)
        }
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
