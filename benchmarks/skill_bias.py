"""Bias correction on the real ERA5 2 m temperature sample with a state-dependent bias: the model
fine-tuned against the truth beside the statistical baselines, all through `atmorep bias-correct`.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/skill_bias.py [--steps 1000] [--set key=value]

The "model output" is the truth plus a bias that follows the diurnal cycle and grows with the
anomaly from the training window's mean per grid point and hour of day:

    biased = truth + 0.8 K + 0.7 K * cos(2 pi (hour - 15) / 24) + 0.4 * anomaly

written as GRIB (`benchmarks/grib_edits.py`) and prepared as any model output would be. The recipe
`recipes/t2m-bias.yaml` trains on 1-19 March (input: the biased store, target: the truth store);
`atmorep bias-correct` then corrects a GRIB file of the biased 20-24 March with `--obs` the truth,
which scores the raw input, the model (RMSE of the ensemble mean, fair CRPS of the members) and
ibicus' per-point mean bias and empirical quantile mapping, both fitted on the same 1-19 March
pairs (a single value's CRPS is its absolute error). Writes `benchmarks/results/skill_bias.json`;
BENCHMARKS.md has the table.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path

import numpy as np
from cli_runs import atmorep
from grib_edits import write_changed_copy
from skill_t2m import REAL_SAMPLE, ensure_store

from atmorep_core.io.store import Store

WORK = Path("skill-bias")
TRUTH = Path("skill-t2m/t2m.zarr")
RECIPE = Path("recipes/t2m-bias.yaml")
RESULTS = Path("benchmarks/results/skill_bias.json")
LAST_TRAINING_HOUR = np.datetime64("2019-03-19T23")
SCORED = (datetime(2019, 3, 20), datetime(2019, 3, 24, 23))


def hourly_means(truth: Store) -> np.ndarray:
    """(24, lat, lon) mean of the truth per hour of day over the training window."""
    arrays = truth.field("t2m")
    values = np.asarray(arrays.data[...], dtype=np.float64)[:, 0]
    train = arrays.times <= LAST_TRAINING_HOUR
    hours = arrays.times.astype("datetime64[h]").astype(np.int64) % 24
    return np.stack([values[train & (hours == h)].mean(axis=0) for h in range(24)])


def biased_files(means: np.ndarray) -> tuple[Path, Path]:
    """The biased sample (all days, for the training store) and its 20-24 March (the input)."""

    def bias(valid: datetime, truth: np.ndarray) -> np.ndarray:
        diurnal = 0.7 * np.cos(2 * np.pi * (valid.hour - 15) / 24)
        return truth + 0.8 + diurnal + 0.4 * (truth - means[valid.hour])

    whole, scored = WORK / "t2m-biased.grib", WORK / "t2m-biased-20to24.grib"
    if not whole.exists():
        write_changed_copy(REAL_SAMPLE, whole, bias)
        write_changed_copy(REAL_SAMPLE, scored, bias, SCORED)
    return whole, scored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    ensure_store(REAL_SAMPLE, TRUTH)
    whole, scored = biased_files(hourly_means(Store.open(TRUTH)))
    biased = WORK / "t2m-biased.zarr"
    ensure_store(whole, biased)
    run = WORK / "run"
    sets = [f"data.store={biased}", f"data.target={TRUTH}", f"training.steps={args.steps}",
            *args.overrides]  # fmt: skip
    _, train_seconds = atmorep("train", str(RECIPE), "--run-dir", str(run), "--restart",
                               *(f"--set={s}" for s in sets))  # fmt: skip
    manifest, seconds = atmorep("bias-correct", str(scored), "--checkpoint", str(run),
                                "-o", str(WORK / "out" / "t2m.grib2"), "--obs", str(TRUTH),
                                "--force")  # fmt: skip
    score = manifest["score"]["t2m"]
    result = {
        "recipe": str(RECIPE), "steps": args.steps, "overrides": args.overrides,
        "train_seconds": round(train_seconds, 1), "bias_correct_seconds": round(seconds, 1),
        "scores": score,
    }  # fmt: skip
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
