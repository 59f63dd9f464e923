"""Forecast benchmark: wall time and peak memory of `atmorep forecast` at 0.25 degree on the CPU.

Builds (or reuses) a global 0.25-degree store the way users make theirs (ERA5-like GRIB of
smooth travelling waves, 721 x 1440 points, temperature on 5 model levels, 48 hourly steps,
ingested with `prepare`), trains the tiny preset's temperature field on all 5 levels for two steps
(the weights do not change the cost), then runs the whole forecast job (read, normalise, tile,
model, stitch, iterate, GRIB2 + NetCDF products) for a global forecast and for smaller areas and
longer leads. Each case runs in a fresh process (2 torch threads), so its peak RSS (`ru_maxrss`)
is its own.

    PYTHONPATH=benchmarks .venv/bin/python benchmarks/forecast_bench.py
    PYTHONPATH=benchmarks .venv/bin/python benchmarks/forecast_bench.py --only europe-3h
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"
WORK = ROOT / "bench-forecast"
THREADS = 2
INIT = datetime(2021, 1, 11, 12)  # 36 h into the store's 48 hours


@dataclass(frozen=True)
class Case:
    area: tuple[float, float, float, float] | None  # N/W/S/E; None: the globe
    lead_hours: int


CASES = {
    "global-3h": Case(None, 3),
    "global-6h": Case(None, 6),
    "europe-3h": Case((72.0, -25.0, 30.0, 45.0), 3),
    "europe-6h": Case((72.0, -25.0, 30.0, 45.0), 6),
    "europe-12h": Case((72.0, -25.0, 30.0, 45.0), 12),
    "europe-24h": Case((72.0, -25.0, 30.0, 45.0), 24),
    "uk-3h": Case((61.0, -11.0, 49.0, 2.0), 3),
}


def tiny_temperature() -> dict[str, Any]:
    """recipes/tiny.yaml's temperature field on all five levels of the store."""
    tiny = yaml.safe_load((ROOT / "recipes" / "tiny.yaml").read_text())
    field = next(f for f in tiny["model"]["fields"] if f["name"] == "temperature")
    return {"fields": [{**field, "levels": [96, 105, 114, 123, 137]}]}


def prepare_inputs() -> tuple[Path, Path]:
    """The store and a checkpoint, built once and reused."""
    from sampler_bench import build_store

    store, run = WORK / "global-0.25.zarr", WORK / "run"
    if not store.exists():
        build_store(store, days=2)
    if not (run / "latest").exists():
        recipe = {
            "model": tiny_temperature(),
            "data": {"store": str(store)},
            "training": {
                "steps": 2, "batch_size": 2, "samples_per_epoch": 16, "warmup_steps": 1,
                "masking": {"fields": {"temperature": {"kind": "forecast"}}},
            },
        }  # fmt: skip
        path = WORK / "recipe.yaml"
        path.write_text(yaml.safe_dump(recipe))
        command = [sys.executable, "-m", "atmorep_cli", "train", str(path), "--run-dir", str(run)]
        subprocess.run(command, check=True, cwd=ROOT, capture_output=True)
    return store, run


def run_case(name: str, store: Path, run: Path) -> dict[str, Any]:
    """One forecast job in this process; time per stage and the peak RSS."""
    from atmorep_core.jobs.product_job import ProductJob
    from atmorep_core.jobs.product_kinds import run_product_job
    from atmorep_core.products.forecast import ForecastRequest

    torch.set_num_threads(THREADS)
    case = CASES[name]
    out = WORK / "products" / name
    shutil.rmtree(out, ignore_errors=True)
    request = ForecastRequest(INIT, case.lead_hours, area=case.area, batch_size=64)
    started = time.perf_counter()
    job = ProductJob(checkpoint=run, out=out, store=store, force=True)
    manifest = run_product_job(job, request)
    seconds = time.perf_counter() - started
    grid = manifest["grid"]
    return {
        "seconds": round(seconds, 1),
        "forecast_seconds": manifest["seconds"],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "points": grid["nlat"] * grid["nlon"],
        "lead_hours": case.lead_hours,
        "area": case.area,
        "product_mb": round(sum((out / f).stat().st_size for f in manifest["outputs"]) / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument("--out", type=Path, default=RESULTS / "forecast.json")
    parser.add_argument("--case", choices=sorted(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--build", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        prepare_inputs()
        return
    if args.case:
        print(json.dumps(run_case(args.case, *prepare_inputs())))
        return
    # Built in a process of its own: a child inherits its parent's peak RSS through fork + exec.
    subprocess.run([sys.executable, __file__, "--build"], check=True, cwd=ROOT)
    results = {}
    for name in args.only:
        load = os.getloadavg()[0]
        command = [sys.executable, __file__, "--case", name]
        done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
        results[name] = {**json.loads(done.stdout.splitlines()[-1]), "load_before": load}
        print(name, results[name])
    report = {
        "machine": {"cpus": os.cpu_count(), "torch_threads": THREADS},
        "processor": platform.processor(),
        "torch": torch.__version__,
        "model": tiny_temperature(),
        "init": INIT.isoformat(),
        "cases": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
