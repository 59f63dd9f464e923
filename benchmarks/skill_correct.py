"""Skill check of `atmorep correct`: does a model trained on the embedded sample's reference run
bring the IFS-like companion forecast (same core, a known boundary-layer error) closer to it?

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/skill_correct.py [--workdir skill-correct]

(a) simulates the sample with its IFS-like companion (`atmorep sample --ifs-like 24`: 1 February
00 UTC + 0..23 h) and prepares the reference store from its ERA5-like files, if missing; (b)
trains `recipes/correct-sample.yaml` on 28-31 January (or scores `--checkpoint RUN`); (c) runs
`atmorep correct --truth` on the companion file in each mode, which scores every corrected
message against the reference at its valid time and level: RMSE of the raw field and of the
corrected one, per field, per level and per lead. Writes `benchmarks/results/skill_correct.json`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RECIPE = Path("recipes/correct-sample.yaml")
RESULTS = Path("benchmarks/results/skill_correct.json")
IFS_FILE = "ifs_fc_20200201T00.grib2"
MODES = ("denoise", "forecast")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("skill-correct"))
    parser.add_argument("--recipe", type=Path, default=RECIPE)
    parser.add_argument("--checkpoint", type=Path, default=None, help="score this run instead")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="key=value")
    parser.add_argument(
        "--mode", dest="modes", action="append", choices=MODES, help="default: both"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def atmorep(*args: str) -> dict[str, Any]:
    """Run one command as a user would; its --json output."""
    command = [sys.executable, "-m", "atmorep_cli", *args, "--json"]
    print("$ atmorep " + " ".join(args), file=sys.stderr, flush=True)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"atmorep {args[0]} failed ({done.returncode}): {done.stderr}")
    found: dict[str, Any] = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
    return found


def ensure_sample(workdir: Path) -> tuple[Path, Path]:
    grib, store = workdir / "grib", workdir / "sample.zarr"
    if not (grib / IFS_FILE).exists():
        atmorep("sample", "--out", str(grib), "--ifs-like", "24")
    if not (store / "zarr.json").exists():
        atmorep("prepare", str(grib / "*.grib"), "--store", str(store))
    return grib / IFS_FILE, store


def train(args: argparse.Namespace, store: Path) -> Path:
    if args.checkpoint is not None:
        return Path(args.checkpoint)
    run = args.workdir / "run"
    sets = [f"--set=data.store={store}", *(f"--set={item}" for item in args.overrides)]
    atmorep("train", str(args.recipe), "--run-dir", str(run), "--restart", *sets, "--device", "cpu")
    return run


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    ifs, store_path = ensure_sample(args.workdir)
    run = train(args, store_path)
    results = {}
    for mode in args.modes or MODES:
        output = args.workdir / f"corrected-{mode}.grib2"
        summary = atmorep(
            "correct", "--ifs", str(ifs), "--checkpoint", str(run), "-o", str(output),
            "--mode", mode, "--truth", str(store_path), "--force",
        )  # fmt: skip
        results[mode] = {"seconds": summary["seconds"], "scores": summary["score"]}
        for group, row in results[mode]["scores"].items():
            print(f"{mode:8s} {group:18s} raw {row['rmse_raw']:.3f} corrected "
                  f"{row['rmse_corrected']:.3f} ratio {row['ratio']:.3f}")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"checkpoint": str(run), "modes": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
