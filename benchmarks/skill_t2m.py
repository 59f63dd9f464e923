"""Skill check: does the tiny model, trained from scratch on CPU for a few minutes on the real ERA5
2 m temperature sample, beat persistence on a 3 h forecast of the held-back days?

    .venv/bin/python benchmarks/skill_t2m.py [--workdir skill-t2m] [--set training.steps=900]

(a) prepares the store from the GRIB sample if it is missing, (b) trains with
`recipes/t2m-tiny.yaml` through `atmorep train`, (c) scores the final checkpoint on every start
time of the recipe's validation window at every spatial position (or a stride of them): the
forecast strategy hides the last time token (3 h), the model's ensemble is de-normalised to
kelvin and compared, per lead hour and overall, with persistence (the last visible hour
repeated) and a climatology of the training window (per grid point and hour of day).
Writes `benchmarks/results/skill_t2m.json`; BENCHMARKS.md has the table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from atmorep_core.data.batch import Batch, collate
from atmorep_core.data.prepare import prepare
from atmorep_core.data.sampler import NeighbourhoodSampler, SamplerConfig
from atmorep_core.io.store import Store
from atmorep_core.model import checkpoint
from atmorep_core.model.config import model_config_from_dict
from atmorep_core.model.multiformer import Multiformer, count_parameters
from atmorep_core.model.tokens import detokenize
from atmorep_core.questions.masking import MaskingConfig, mask_batch
from atmorep_core.questions.strategies import TokenGrid
from atmorep_core.training.losses import fair_crps

# Defaults relative to the repository root, where the command is run.
REAL_SAMPLE = Path("../shared/data/era5/era5-t2m-uk-2019-03-01to24.grib")
RECIPE = Path("recipes/t2m-tiny.yaml")
RESULTS = Path("benchmarks/results/skill_t2m.json")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grib", type=Path, default=REAL_SAMPLE, help="the ERA5 t2m sample")
    parser.add_argument("--workdir", type=Path, default=Path("skill-t2m"), help="store and run")
    parser.add_argument("--recipe", type=Path, default=RECIPE)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="key=value")
    parser.add_argument("--skip-train", action="store_true", help="score the existing run")
    parser.add_argument(
        "--stride", type=int, default=None,
        help="spatial step between positions; default: tiles covering every grid point once "
        "(the last row and column of tiles overlap the others where the grid does not divide)",
    )  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args(argv)


# --- (a) and (b): store and training ----------------------------------------------------------


def ensure_store(grib: Path, store: Path) -> None:
    if not (store / "zarr.json").exists():
        prepare([grib], store)


def train_command(recipe: Path, store: Path, run: Path, overrides: Sequence[str]) -> list[str]:
    sets = [f"--set=data.store={store}", *(f"--set={item}" for item in overrides)]
    return [sys.executable, "-m", "atmorep_cli", "train", str(recipe), "--run-dir", str(run),
            "--restart", *sets, "--device", "cpu", "--json"]  # fmt: skip


def run_training(command: list[str]) -> float:
    """Wall-clock seconds of the training process (start-up and validation included)."""
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"training failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return time.perf_counter() - started


# --- (c) evaluation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Trained:
    model: Multiformer
    config: dict[str, Any]
    step: int


def load_trained(run: Path) -> Trained:
    saved = checkpoint.load(run)
    model = Multiformer(model_config_from_dict(saved.config["model"]))
    model.load_state_dict(saved.model)
    return Trained(model.eval(), saved.config, saved.step)


def window_of(times: Sequence[Any]) -> tuple[np.datetime64, np.datetime64]:
    # The recipe saved in a checkpoint holds datetimes as YAML wrote them (naive UTC).
    first, last = (np.datetime64(str(t).replace(" ", "T").removesuffix("+00:00"), "s")
                   for t in times)  # fmt: skip
    return first, last


def make_sampler(store: Store, config: dict[str, Any], window: str) -> NeighbourhoodSampler:
    model = model_config_from_dict(config["model"])
    sampler_config = SamplerConfig.from_dict(model.sampler_section())
    return NeighbourhoodSampler(store, sampler_config, window=window_of(config["data"][window]))


def positions(sampler: NeighbourhoodSampler, stride: int | None) -> list[tuple[int, int, int]]:
    """Every start time of the window at every spatial position of a tiling (or a stride)."""
    _, height, width = sampler.extent
    lats = _starts(sampler.space.lat_starts, stride or height)
    lons = _starts(sampler.space.lon_starts, stride or width)
    return [(int(t), y, x) for t in sampler.starts for y in lats for x in lons]


def _starts(count: int, step: int) -> list[int]:
    """0, step, 2 step, ... and the last start, so that the windows reach the grid's edge."""
    return sorted({*range(0, count, step), count - 1})


def climatology(store: Store, name: str, levels: Sequence[int], window: Any) -> np.ndarray:
    """(24, level, lat, lon) kelvin: the training window's mean per hour of day and grid point."""
    arrays = store.field(name)
    first, last = window_of(window)
    inside = np.flatnonzero((arrays.times >= first) & (arrays.times <= last))
    level_index = [int(np.flatnonzero(arrays.levels == v)[0]) for v in levels]
    values = np.asarray(arrays.data[int(inside[0]) : int(inside[-1]) + 1], dtype=np.float64)
    values = values[:, level_index]  # (time, level, lat, lon)
    hours = arrays.times[inside].astype("datetime64[h]").astype(np.int64) % 24
    return np.stack([values[hours == h].mean(axis=0) for h in range(24)])


@dataclass(frozen=True)
class Scored:
    """One batch in kelvin over the forecast hours: (B, [E,] L, H, Y, X)."""

    truth: np.ndarray
    ensemble: np.ndarray
    persistence: np.ndarray
    climatology: np.ndarray


def batches(sampler: NeighbourhoodSampler, where: list[tuple[int, int, int]], size: int
            ) -> Iterator[Batch]:  # fmt: skip
    for i in range(0, len(where), size):
        yield collate([sampler.read(*p) for p in where[i : i + size]])


def denormalise(sampler: NeighbourhoodSampler, name: str, batch: Batch, values: torch.Tensor
                ) -> np.ndarray:  # fmt: skip
    """(B, ..., L, T, Y, X) normalised values of the batch's windows -> kelvin (float64)."""
    stats = [sampler.statistics(name, m.time_index, m.lat_start, m.lon_start) for m in batch.metas]
    # A window across a month's end has statistics per time step, the others one for all.
    full = (values.shape[-4], sampler.extent[0], *values.shape[-2:])  # (L, T, Y, X)
    mean = np.stack([np.broadcast_to(s[0], full) for s in stats]).astype(np.float64)
    std = np.stack([np.broadcast_to(s[1], full) for s in stats]).astype(np.float64)
    extra = values.dim() - mean.ndim  # the ensemble axis, if any
    shape = (mean.shape[0],) + (1,) * extra + mean.shape[1:]
    return values.double().numpy() * std.reshape(shape) + mean.reshape(shape)


def forecast_points(ensemble: torch.Tensor, grid: TokenGrid, time_tokens: int) -> torch.Tensor:
    """(B, M, E, P) ensemble of the last `time_tokens` time tokens -> (B, E, L, H, Y, X)."""
    b, _, e, _ = ensemble.shape
    n_y, n_x = grid.counts[1:]
    tokens = ensemble.reshape(b, grid.levels, time_tokens, n_y, n_x, e, *grid.size)
    return detokenize(tokens.permute(0, 5, 1, 2, 3, 4, 6, 7, 8))  # (B, E, L, H, Y, X)


@torch.no_grad()
def score_batch(trained: Trained, sampler: NeighbourhoodSampler, batch: Batch,
                clim: np.ndarray, time_tokens: int) -> Scored:  # fmt: skip
    name = sampler.field_names[0]
    masking = MaskingConfig.from_dict(
        {"fields": {name: {"kind": "forecast", "time_tokens": time_tokens}}}
    )
    inputs, _ = mask_batch(batch, masking, torch.Generator().manual_seed(0))
    grid = TokenGrid.of(batch.tokens[name])
    expected = grid.flat_index()[:, -time_tokens:].flatten()
    assert torch.equal(inputs[name].target_index[0], expected), "forecast targets out of order"
    ensemble = forecast_points(trained.model(inputs)[name].ensemble, grid, time_tokens)
    hours = time_tokens * grid.size[0]
    truth = denormalise(sampler, name, batch, detokenize(batch.tokens[name]))  # (B, L, T, Y, X)
    ensemble_k = denormalise(sampler, name, batch, _pad_hours(ensemble, truth.shape[2]))
    last_seen = truth[:, :, -hours - 1 : -hours]  # (B, L, 1, Y, X)
    return Scored(
        truth[:, :, -hours:],
        ensemble_k[:, :, :, -hours:],
        np.repeat(last_seen, hours, axis=2),
        _climatology_of(batch, sampler, clim, hours),
    )


def _pad_hours(ensemble: torch.Tensor, total: int) -> torch.Tensor:
    """(B, E, L, H, Y, X) -> (B, E, L, total, Y, X): the forecast hours last, so the window's
    per-time statistics line up; the padded hours are never scored."""
    pad = torch.zeros(*ensemble.shape[:3], total - ensemble.shape[3], *ensemble.shape[4:])
    return torch.cat([pad, ensemble], dim=3)


def _climatology_of(batch: Batch, sampler: NeighbourhoodSampler, clim: np.ndarray, hours: int
                    ) -> np.ndarray:  # fmt: skip
    """(B, L, H, Y, X) climatology at each window's forecast hours and grid points."""
    t, y, x = sampler.extent
    rows = []
    for meta in batch.metas:
        times = sampler.times[meta.time_index + t - hours : meta.time_index + t]
        hour = times.astype("datetime64[h]").astype(np.int64) % 24
        lat, lon = meta.lat_start, meta.lon_start
        box = clim[hour, :, lat : lat + y, lon : lon + x]  # (H, L, Y, X)
        rows.append(box.swapaxes(0, 1))  # (L, H, Y, X)
    return np.stack(rows)


@dataclass
class Sums:
    """Per lead hour sums over all scored points, to average at the end."""

    hours: int
    totals: dict[str, np.ndarray] = field(default_factory=dict)

    def add(self, name: str, values: np.ndarray, hour_axis: int) -> None:
        axes = tuple(a for a in range(values.ndim) if a != hour_axis)
        total = values.sum(axis=axes)
        self.totals[name] = self.totals.get(name, np.zeros(self.hours)) + total

    def add_batch(self, scored: Scored) -> None:
        truth, members = scored.truth, scored.ensemble  # (B, L, H, Y, X), (B, E, L, H, Y, X)
        self.add("count", np.ones_like(truth), 2)
        self.add("sq_model", (members.mean(axis=1) - truth) ** 2, 2)
        self.add("abs_model", np.abs(members.mean(axis=1) - truth), 2)
        self.add("sq_persistence", (scored.persistence - truth) ** 2, 2)
        self.add("abs_persistence", np.abs(scored.persistence - truth), 2)
        self.add("sq_climatology", (scored.climatology - truth) ** 2, 2)
        self.add("abs_climatology", np.abs(scored.climatology - truth), 2)
        self.add("variance", members.var(axis=1, ddof=1), 2)  # unbiased over members
        self.add("spread", members.std(axis=1, ddof=1), 2)
        crps = fair_crps(torch.from_numpy(np.moveaxis(members, 1, -1)), torch.from_numpy(truth))
        self.add("crps_model", crps.numpy(), 2)


def summarise(totals: dict[str, np.ndarray]) -> dict[str, float]:
    n = totals["count"]
    rmse = {k: float(np.sqrt(totals[f"sq_{k}"] / n)) for k in ("model", "persistence",
                                                                "climatology")}  # fmt: skip
    spread_rms = float(np.sqrt(totals["variance"] / n))
    return {
        "points": int(n),
        "rmse_model": rmse["model"],
        "rmse_persistence": rmse["persistence"],
        "rmse_climatology": rmse["climatology"],
        "mae_model": float(totals["abs_model"] / n),
        "crps_model": float(totals["crps_model"] / n),
        "crps_persistence": float(totals["abs_persistence"] / n),  # CRPS of one value = MAE
        "crps_climatology": float(totals["abs_climatology"] / n),
        "mean_spread": float(totals["spread"] / n),
        "rms_spread": spread_rms,
        "spread_skill": spread_rms / rmse["model"],
    }


def evaluate(trained: Trained, store: Store, stride: int | None, batch_size: int) -> dict[str, Any]:
    sampler = make_sampler(store, trained.config, "validation")
    fields = trained.config["model"]["fields"]
    clim = climatology(store, fields[0]["name"], fields[0]["levels"],
                       trained.config["data"]["train"])  # fmt: skip
    time_tokens = 1
    hours = time_tokens * sampler.config.fields[0].token_size[0]
    where = positions(sampler, stride)
    sums = Sums(hours)
    for batch in batches(sampler, where, batch_size):
        sums.add_batch(score_batch(trained, sampler, batch, clim, time_tokens))
    per_lead = [
        {"lead_h": h + 1, **summarise({k: v[h : h + 1].sum() for k, v in sums.totals.items()})}
        for h in range(hours)
    ]
    overall = summarise({k: v.sum() for k, v in sums.totals.items()})
    return {"neighbourhoods": len(where), "per_lead": per_lead, "overall": overall}


TRAIN_RECORD = "skill_train.json"  # beside the checkpoints: how long the run took to train


def train_record(run: Path, command: list[str], skip: bool) -> dict[str, Any]:
    """Train (unless skipped) and return the run's training record: wall time and command."""
    path = run / TRAIN_RECORD
    if not skip:
        record = {
            "train_wall_s": round(run_training(command), 1),
            # As a user types it: the CLI entry point instead of this interpreter's path.
            "train_command": " ".join([".venv/bin/atmorep", *command[3:]]),
        }
        path.write_text(json.dumps(record, indent=1))
    return json.loads(path.read_text()) if path.exists() else {}


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    store_path, run = args.workdir / "t2m.zarr", args.workdir / "run"
    ensure_store(args.grib, store_path)
    command = train_command(args.recipe, store_path, run, args.overrides)
    record = train_record(run, command, args.skip_train)
    trained = load_trained(run)
    started = time.perf_counter()
    scores = evaluate(trained, Store.open(store_path), args.stride, args.batch_size)
    members = trained.config["model"]["fields"][0]["tail_heads"]
    model_config = model_config_from_dict(trained.config["model"])
    sets = " ".join(f"--set {item!r}" for item in args.overrides)
    # The thread count changes the speed (and the float rounding), so it is part of the command.
    threads = os.environ.get("OMP_NUM_THREADS")
    env = f"OMP_NUM_THREADS={threads} " if threads else ""
    result = {
        "command": f"{env}.venv/bin/python benchmarks/skill_t2m.py {sets}".strip(),
        **record,
        "evaluate_wall_s": round(time.perf_counter() - started, 1),
        "steps": trained.step,
        "parameters": count_parameters(model_config)["total"],
        "ensemble_members": members,
        # With E members the unbiased spread of a reliable ensemble is sqrt(E / (E + 1)) x RMSE.
        "reliable_spread_skill": float(np.sqrt(members / (members + 1))),
        "torch_threads": torch.get_num_threads(),
        **scores,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
