"""Bias correction of the embedded sample's IFS-like companion: the model fine-tuned against the
reference run beside the statistical baselines, all through `atmorep bias-correct`.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/skill_bias_sample.py [--steps 1000] [--set k=v]

(a) simulates the sample with five daily IFS-like forecasts (`atmorep sample --ifs-like 24
--ifs-like-runs 5`: 28 January .. 1 February, 00 UTC + 0..23 h, with the boundary-layer error of
`sample/simulate.py`) and prepares the reference store from its ERA5-like files and the companion
store from the forecasts (valid times back to back); (b) trains `recipes/sample-bias.yaml` on the
forecasts of 28-31 January against the reference; (c) runs `atmorep bias-correct --obs` on the
forecast of 1 February, which scores the raw forecast, the model (RMSE of its ensemble mean, fair
CRPS of its members) and ibicus' per-point mean bias and quantile mapping fitted on the same
28-31 January pairs, per field and level. Writes `benchmarks/results/skill_bias_sample.json`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cli_runs import atmorep

WORK = Path("skill-bias-sample")
RECIPE = Path("recipes/sample-bias.yaml")
RESULTS = Path("benchmarks/results/skill_bias_sample.json")
SCORED = "ifs_fc_20200201T00.grib2"


def ensure_stores() -> tuple[Path, Path]:
    grib, reference, companion = WORK / "grib", WORK / "sample.zarr", WORK / "companion.zarr"
    if not (grib / SCORED).exists():
        atmorep("sample", "--out", str(grib), "--ifs-like", "24", "--ifs-like-runs", "5")
    if not (reference / "zarr.json").exists():
        atmorep("prepare", str(grib / "*.grib"), "--store", str(reference))
    if not (companion / "zarr.json").exists():
        atmorep("prepare", str(grib / "ifs_fc_*.grib2"), "--store", str(companion))
    return reference, companion


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    reference, companion = ensure_stores()
    run = WORK / "run"
    sets = [f"data.store={companion}", f"data.target={reference}", f"training.steps={args.steps}",
            *args.overrides]  # fmt: skip
    _, train_seconds = atmorep("train", str(RECIPE), "--run-dir", str(run), "--restart",
                               *(f"--set={s}" for s in sets))  # fmt: skip
    manifest, seconds = atmorep("bias-correct", str(WORK / "grib" / SCORED), "--checkpoint",
                                str(run), "-o", str(WORK / "out" / SCORED), "--obs",
                                str(reference), "--force")  # fmt: skip
    result = {
        "recipe": str(RECIPE), "steps": args.steps, "overrides": args.overrides,
        "train_seconds": round(train_seconds, 1), "bias_correct_seconds": round(seconds, 1),
        "scores": manifest["score"],
    }  # fmt: skip
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
