"""Skill check: hourly ERA5 2 m temperature from 3-hourly input, by `atmorep interpolate`,
against linear and cubic-spline interpolation in time.

    .venv/bin/python benchmarks/skill_interpolation.py [--workdir skill-interp] [--set key=value]

(a) prepares the store from the real GRIB sample if it is missing, (b) trains
`recipes/t2m-interp.yaml` on 1-19 March through `atmorep train`, (c) runs `atmorep interpolate`
on 20-24 March with only every third hour of the store given (`--input-every 3h`), an
ensemble of 8 members, and (d) scores the filled hours against the store: RMSE of the ensemble
mean, fair CRPS of the ensemble, and the RMSE (and MAE, the CRPS of a single value) of linear
and cubic-spline interpolation in time (scipy) of the same 3-hourly values, per hour after the
last given one and overall. Writes `benchmarks/results/skill_interpolation.json`; BENCHMARKS.md
has the table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from scipy.interpolate import CubicSpline, make_interp_spline

from atmorep_core.data.prepare import prepare
from atmorep_core.evaluation.metrics import crps_ensemble
from atmorep_core.io.store import Store

# Defaults relative to the repository root, where the command is run.
REAL_SAMPLE = Path("../shared/data/era5/era5-t2m-uk-2019-03-01to24.grib")
RECIPE = Path("recipes/t2m-interp.yaml")
RESULTS = Path("benchmarks/results/skill_interpolation.json")
START, END, EVERY = "2019-03-20T00", "2019-03-24T21", 3
MEMBERS = 8


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grib", type=Path, default=REAL_SAMPLE, help="the ERA5 t2m sample")
    parser.add_argument("--workdir", type=Path, default=Path("skill-interp"), help="store, run")
    parser.add_argument("--recipe", type=Path, default=RECIPE)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="key=value")
    parser.add_argument("--skip-train", action="store_true", help="score the existing run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def atmorep(*args: str) -> tuple[str, float]:
    """Run `atmorep ARGS`; its stdout and wall-clock seconds."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "atmorep_cli", *args], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SystemExit(
            f"atmorep {args[0]} failed ({result.returncode}):\n{result.stderr[-3000:]}"
        )
    return result.stdout, time.perf_counter() - started


def as_typed(args: Sequence[str]) -> str:
    return " ".join([".venv/bin/atmorep", *args])


def train(recipe: Path, store: Path, run: Path, overrides: Sequence[str]) -> dict[str, Any]:
    args = ["train", str(recipe), "--run-dir", str(run), "--restart", f"--set=data.store={store}",
            *(f"--set={item}" for item in overrides), "--device", "cpu", "--json"]  # fmt: skip
    _, seconds = atmorep(*args)
    return {"train_command": as_typed(args), "train_wall_s": round(seconds, 1)}


def interpolate(store: Path, run: Path, out: Path) -> dict[str, Any]:
    args = ["interpolate", "--checkpoint", str(run), "--store", str(store), "--start", START,
            "--end", END, "--input-every", f"{EVERY}h", "--members", str(MEMBERS), "--format",
            "netcdf", "--out", str(out), "--force", "--json"]  # fmt: skip
    stdout, seconds = atmorep(*args)
    manifest = json.loads(stdout)
    product = out / next(name for name in manifest["outputs"] if name.endswith(".nc"))
    record = {"interpolate_command": as_typed(args), "interpolate_wall_s": round(seconds, 1)}
    return {**record, "product": str(product)}


def truth_of(store: Path, times: np.ndarray) -> np.ndarray:
    """(time, lat, lon) kelvin of the store at the product's valid times."""
    arrays = Store.open(store).field("t2m")
    index = np.searchsorted(arrays.times, times.astype("datetime64[s]"))
    return np.asarray(arrays.data[int(index[0]) : int(index[-1]) + 1], dtype=np.float64)[:, 0]


def baselines(truth: np.ndarray, hours: np.ndarray, given: np.ndarray) -> dict[str, np.ndarray]:
    """Linear and (not-a-knot) cubic-spline interpolation in time of the given hours."""
    linear = make_interp_spline(hours[given], truth[given], k=1, axis=0)
    spline = CubicSpline(hours[given], truth[given], axis=0)
    return {"linear": linear(hours), "spline": spline(hours)}


def scores(
    members: np.ndarray, truth: np.ndarray, guesses: dict[str, np.ndarray]
) -> dict[str, float]:
    """Over the points given: RMSE and CRPS of the model, RMSE and MAE of each baseline."""
    found = {
        "points": int(truth.size),
        "rmse_model": float(np.sqrt(np.mean((members.mean(axis=0) - truth) ** 2))),
        "crps_model": float(crps_ensemble(members, truth).mean()),
        "rms_spread": float(np.sqrt(members.var(axis=0, ddof=1).mean())),
    }
    for name, guess in guesses.items():
        found[f"rmse_{name}"] = float(np.sqrt(np.mean((guess - truth) ** 2)))
        found[f"mae_{name}"] = float(np.mean(np.abs(guess - truth)))  # its CRPS
    found["model_over_linear"] = found["rmse_model"] / found["rmse_linear"]
    found["model_over_spline"] = found["rmse_model"] / found["rmse_spline"]
    return found


def evaluate(product: Path, store: Path) -> dict[str, Any]:
    with xr.open_dataset(product) as nc:
        members = nc["t2m"].transpose("realization", "time", ...).values.astype(np.float64)
        times = nc["time"].values.astype("datetime64[s]")  # valid times
    truth = truth_of(store, times)
    hours = (times - times[0]) // np.timedelta64(1, "h")
    given = hours % EVERY == 0
    assert np.array_equal(members[:, given], np.broadcast_to(truth[given], members[:, given].shape))
    guesses = baselines(truth, hours, given)
    per_offset = []
    for offset in range(1, EVERY):
        at = hours % EVERY == offset
        picked = {name: g[at] for name, g in guesses.items()}
        per_offset.append(
            {"hours_after_given": offset, **scores(members[:, at], truth[at], picked)}
        )
    hidden = {name: g[~given] for name, g in guesses.items()}
    return {"per_offset": per_offset, "overall": scores(members[:, ~given], truth[~given], hidden)}


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    store, run = args.workdir / "t2m.zarr", args.workdir / "run"
    if not (store / "zarr.json").exists():
        prepare([args.grib], store)
    record_path = run / "skill_train.json"
    if not args.skip_train:
        record_path.parent.mkdir(parents=True, exist_ok=True)
        record_path.write_text(json.dumps(train(args.recipe, store, run, args.overrides)))
    record = json.loads(record_path.read_text())
    done = interpolate(store, run, args.workdir / "products")
    sets = " ".join(f"--set {item!r}" for item in args.overrides)
    result = {
        "command": f".venv/bin/python benchmarks/skill_interpolation.py {sets}".strip(),
        **record,
        **done,
        **evaluate(Path(done["product"]), store),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
