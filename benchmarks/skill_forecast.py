"""Skill through the product path: `atmorep forecast` at every hour of a checkpoint's validation
window (lead 6 h), then `atmorep evaluate` on all of the products against the store.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/skill_forecast.py [--only demo|t2m]

- demo: the embedded sample (`make demo` writes demo-output/sample.zarr); the run
  demo-output/run is trained with recipes/demo.yaml if it has no checkpoint yet.
- t2m: the real ERA5 2 m temperature sample, prepared and trained with recipes/t2m-tiny.yaml as
  benchmarks/skill_t2m.py does (its run in skill-t2m/run is reused when present).
Products go to skill-forecast/CASE/forecasts, scores to skill-forecast/CASE/scores; the summary
(RMSE and CRPS at 1, 3 and 6 h against the autoregression, persistence and climatology, and
the commands) to benchmarks/results/skill_forecast.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from skill_t2m import REAL_SAMPLE, ensure_store, train_command, train_record

RESULTS = Path("benchmarks/results/skill_forecast.json")
WORK = Path("skill-forecast")
LEAD_H = 6
REPORTED_LEADS = (1, 3, 6)
CLI = [sys.executable, "-m", "atmorep_cli"]


@dataclass(frozen=True)
class Case:
    name: str
    store: Path
    run: Path
    members: int


CASES = {
    "demo": Case("demo", Path("demo-output/sample.zarr"), Path("demo-output/run"), 4),
    "t2m": Case("t2m", Path("skill-t2m/t2m.zarr"), Path("skill-t2m/run"), 8),
}


def ensure_trained(case: Case) -> None:
    """Train the case's run once; later calls reuse it."""
    if (case.run / "latest").exists():
        return
    if case.name == "demo":
        if not (case.store / "zarr.json").exists():
            raise SystemExit(f"{case.store} is missing: run `make demo` first")
        cli("train", "recipes/demo.yaml", "--run-dir", str(case.run), "--json")
        return
    ensure_store(REAL_SAMPLE, case.store)
    train_record(case.run, train_command(Path("recipes/t2m-tiny.yaml"), case.store, case.run, []),
                 skip=False)  # fmt: skip


def cli(*args: str) -> str:
    result = subprocess.run([*CLI, *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"atmorep {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def validation_inits(run: Path) -> list[np.datetime64]:
    """Every hour of the validation window whose 6 h forecast stays inside it."""
    step = run / (run / "latest").read_text().strip()
    first, last = json.loads((step / "state.json").read_text())["data_window"]["validation"]
    start, end = np.datetime64(first, "h"), np.datetime64(last, "h") - np.timedelta64(LEAD_H, "h")
    return list(np.arange(start, end + 1, np.timedelta64(1, "h")))


def forecast_args(case: Case, init: np.datetime64 | str, out: Path) -> list[str]:
    return ["forecast", "--checkpoint", str(case.run), "--init", str(init), "--lead",
            f"{LEAD_H}h", "--members", str(case.members), "--format", "netcdf",
            "--out", str(out), "--json"]  # fmt: skip


def run_case(case: Case) -> dict[str, Any]:
    ensure_trained(case)
    forecasts, scores = WORK / case.name / "forecasts", WORK / case.name / "scores"
    inits = validation_inits(case.run)
    started = time.perf_counter()
    for init in inits:
        cli(*forecast_args(case, init, forecasts))
    forecast_s = time.perf_counter() - started
    evaluate = ["evaluate", f"{forecasts}/forecast_*.nc", "--truth", str(case.store),
                "--out", str(scores), "--json"]  # fmt: skip
    started = time.perf_counter()
    result = json.loads(cli(*evaluate))
    return {
        "case": case.name,
        "inits": [str(inits[0]), str(inits[-1]), len(inits)],
        "forecast_command": "atmorep " + " ".join(forecast_args(case, "INIT", forecasts)),
        "evaluate_command": "atmorep " + " ".join(f"'{a}'" if "*" in a else a for a in evaluate),
        "forecast_wall_s": round(forecast_s, 1),
        "evaluate_wall_s": round(time.perf_counter() - started, 1),
        "climatology": result["climatology"],
        "table": table(result["scores"]),
        "notes": result["notes"],
    }


def table(scores: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per field, level and reported lead: RMSE and CRPS of the model and the baselines."""
    rows: dict[tuple[str, int, int], dict[str, Any]] = {}
    for row in scores:
        if row["lead_h"] not in REPORTED_LEADS:
            continue
        key = (row["field"], row["level"], row["lead_h"])
        line = rows.setdefault(key, {"field": key[0], "level": key[1], "lead_h": key[2]})
        line[f"rmse_{row['source']}"] = row["rmse"]
        line[f"crps_{row['source']}"] = row["crps"]
        if row["source"] == "model":
            line |= {"inits": row["inits"], "spread_skill": row["spread_skill"], "acc": row["acc"]}
    return list(rows.values())


def markdown(case: dict[str, Any]) -> str:
    sources = ("model", "autoregression", "persistence", "climatology")
    head = ["field", "level", "lead", *(f"RMSE {s}" for s in sources),
            *(f"CRPS {s}" for s in sources), "model / autoregression", "spread/skill"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "| --- " * 3 + "| ---: " * (len(head) - 3) + "|"]
    for r in case["table"]:
        cells = [f"{r[f'{k}_{s}']:.3g}" for k in ("rmse", "crps") for s in sources]
        ratio = r["rmse_model"] / r["rmse_autoregression"]
        lines.append(f"| {r['field']} | {r['level']} | {r['lead_h']} h | {' | '.join(cells)} | "
                     f"{ratio:.2f} | {r['spread_skill']:.2f} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=sorted(CASES), action="append")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    cases = [run_case(CASES[name]) for name in args.only or CASES]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    earlier = json.loads(args.out.read_text()) if args.out.exists() else {}
    results = earlier | {case["case"]: case for case in cases}
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    for case in cases:
        print(f"\n{case['case']}: {case['inits']}\n{markdown(case)}")


if __name__ == "__main__":
    main()
