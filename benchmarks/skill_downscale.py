"""Skill check: 0.25-degree ERA5 2 m temperature from its 1-degree block means, by
`atmorep downscale`, scored by `atmorep evaluate` beside bilinear interpolation and a
per-gridpoint regression on it.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/skill_downscale.py [--skip-train] [--set k=v]
        [--run skill-downscale/run] [--out benchmarks/results/skill_downscale.json]

(a) cuts 1-19 March out of the real sample (eccodes, message by message) and prepares it as the
training store `skill-downscale/train.zarr`, so that neither the model nor its local
normalisation statistics see the scored days; (b) trains `recipes/t2m-downscale.yaml` on it;
(c) writes the sample's 1-degree block means (`benchmarks/grib_edits.py`: 8 x 12 cells
of 4 x 4 points) as GRIB and runs `atmorep downscale` on 20-24 March from them, 8 members;
(d) runs `atmorep evaluate` on the product against the 0.25-degree store (its baselines for
downscaling products: `bilinear_in_space` and `regression_on_bilinear`, fitted on the
checkpoint's training window). Writes `benchmarks/results/skill_downscale.json`; BENCHMARKS.md
has the table.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import eccodes
import numpy as np
from cli_runs import atmorep
from grib_edits import write_block_means
from skill_t2m import REAL_SAMPLE, ensure_store

from atmorep_core.data.prepare import prepare

WORK = Path("skill-downscale")
TRUTH = Path("skill-t2m/t2m.zarr")
RECIPE = Path("recipes/t2m-downscale.yaml")
RESULTS = Path("benchmarks/results/skill_downscale.json")
LAST_TRAINING_DAY = 20190319
START, END = "2019-03-20T00", "2019-03-24T23"
MEMBERS = 8
SOURCES = ("model", "bilinear_in_space", "regression_on_bilinear")


def training_store() -> Path:
    """1-19 March of the sample, prepared on its own."""
    grib, store = WORK / "t2m-1to19.grib", WORK / "train.zarr"
    if not (store / "zarr.json").exists():
        WORK.mkdir(parents=True, exist_ok=True)
        with open(REAL_SAMPLE, "rb") as source, open(grib, "wb") as cut:
            while (handle := eccodes.codes_grib_new_from_file(source)) is not None:
                if eccodes.codes_get(handle, "dataDate") <= LAST_TRAINING_DAY:
                    cut.write(eccodes.codes_get_message(handle))
                eccodes.codes_release(handle)
        prepare([grib], store)
    return store


def summary(scores: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per source over all hours: RMSE (root of the mean MSE), mean CRPS, mean spread/skill."""
    out = {}
    for source in SOURCES:
        rows = [r for r in scores if r["source"] == source]
        out[source] = {
            "rmse": float(np.sqrt(np.mean([r["rmse"] ** 2 for r in rows]))),
            "crps": float(np.mean([r["crps"] for r in rows])),
        }
        if source == "model":
            out[source]["spread_skill"] = float(np.mean([r["spread_skill"] for r in rows]))
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-train", action="store_true", help="score the existing run")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="key=value")
    parser.add_argument("--run", type=Path, default=WORK / "run", help="run folder")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results file")
    args = parser.parse_args(argv)
    ensure_store(REAL_SAMPLE, TRUTH)
    store, run = training_store(), args.run
    record: dict[str, Any] = {"command": "OMP_NUM_THREADS=1 .venv/bin/python "
                              "benchmarks/skill_downscale.py"}  # fmt: skip
    if not args.skip_train:
        train = ["train", str(RECIPE), "--run-dir", str(run), "--restart",
                 f"--set=data.store={store}",
                 "--set=data.validation=null", "--device", "cpu",
                 *(f"--set={item}" for item in args.overrides)]  # fmt: skip
        record["train_command"] = "atmorep " + " ".join(train)
        record["train_wall_s"] = round(atmorep(*train)[1], 1)
    coarse = WORK / "t2m-1deg.grib"
    if not coarse.exists():
        write_block_means(REAL_SAMPLE, coarse, 4)
    prefix = "" if run == WORK / "run" else f"{run.name}-"  # the default run: as documented
    products, scores = run.with_name(f"{prefix}products"), run.with_name(f"{prefix}scores")
    downscale = ["downscale", "--checkpoint", str(run), "--input", str(coarse), "--start", START,
                 "--end", END, "--members", str(MEMBERS), "--format", "netcdf", "--plot", "t2m",
                 "--out", str(products), "--force"]  # fmt: skip
    manifest, seconds = atmorep(*downscale)
    product = next(name for name in manifest["outputs"] if name.endswith(".nc"))
    evaluate = ["evaluate", str(products / product), "--truth", str(TRUTH), "--out", str(scores)]
    evaluation, evaluate_seconds = atmorep(*evaluate)
    table = summary(evaluation["scores"])
    record |= {
        "downscale_command": "atmorep " + " ".join(downscale),
        "downscale_wall_s": round(seconds, 1),
        "evaluate_command": "atmorep " + " ".join(evaluate),
        "evaluate_wall_s": round(evaluate_seconds, 1),
        "climatology": evaluation["climatology"],
        "scores": table,
        "model_over_bilinear": table["model"]["rmse"] / table["bilinear_in_space"]["rmse"],
        "model_over_regression": table["model"]["rmse"] / table["regression_on_bilinear"]["rmse"],
        "notes": evaluation["notes"],
    }
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
