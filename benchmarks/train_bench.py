"""Training step benchmark: time, FLOPs and peak memory of one optimizer step on the CPU.

Each configuration runs in a fresh subprocess (so peak RSS figures do not mix), with
`torch.set_num_threads(2)` and fp32. A step is what the trainer does (training/trainer.py `_step`)
without the store: synthetic normalised tokens (standard normal) and plausible alpha go into a
`Batch`, then the real `mask_batch` -> `Multiformer` -> `combined_loss` -> backward -> gradient
clipping -> AdamW. The masking generator is seeded per step as the trainer seeds it, so the
BERT ratio (drawn in [0, max_ratio)) changes the number M of target tokens from step to step;
each step's FLOPs are counted at its own M.

FLOPs: analytically from the configuration (matmuls only, backward = 2 x forward) and counted
by `torch.utils.flop_counter.FlopCounterMode` on the first step (a warm-up step; for base, with
minutes per step and no warm-up, the one timed step). The CPU's matmul rate is measured in its
own subprocess on 2048^3 and on the model's shapes; the efficiency figure is
step time / (analytic FLOPs / 2048^3 matmul rate), median over the timed steps. The load average
before and after each configuration is recorded: other processes on the cores spoil the figures.

Memory: as the trainer does, each configuration's process first has glibc return freed blocks of
1 MiB and more to the OS (`trainer.return_large_frees_to_os`), and the model recomputes what its
recipe's `activation_checkpointing` says; both are recorded with the results.

    .venv/bin/python benchmarks/train_bench.py                    # all configurations
    .venv/bin/python benchmarks/train_bench.py --only bench-single --profile
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from atmorep_core.data.batch import Batch, SampleMeta
from atmorep_core.model.config import FieldModelConfig, ModelConfig, model_config_from_dict
from atmorep_core.model.embedding import alpha_feature_count
from atmorep_core.model.multiformer import Multiformer
from atmorep_core.questions.masking import MaskingConfig, mask_batch
from atmorep_core.training.losses import LossConfig, combined_loss
from atmorep_core.training.trainer import MMAP_THRESHOLD, return_large_frees_to_os

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"
THREADS = 2
ISSUE_FLOP = 1.2e12  # the issue's figure for bench-single
TARGET_RATIO = 1.3
TARGET_RSS_MB = 1500.0
Shape = tuple[int, ...]
DEFAULT_MASKING = {"kind": "BERT", "max_ratio": 0.5}  # for recipes without a training section


@dataclass(frozen=True)
class Case:
    """One configuration to time: a recipe, its batch and how many steps."""

    recipe: str  # file name in recipes/
    batch_size: int
    warmup: int
    steps: int
    field_overrides: tuple[tuple[str, Any], ...] = ()  # (key, value) set on every field


CASES: dict[str, Case] = {
    "bench-single": Case("bench-single.yaml", batch_size=2, warmup=1, steps=5),
    "tiny": Case("tiny.yaml", batch_size=8, warmup=3, steps=10),
    # base.yaml's dropout 0.05 also drops attention weights, which sends the CPU's attention to
    # the math kernel with (B, H, N, N) tensors: out of memory here. Timed without dropout.
    "base": Case("base.yaml", batch_size=2, warmup=0, steps=1, field_overrides=(("dropout", 0.0),)),
}


# --- the step -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    model: Multiformer
    optimizer: torch.optim.Optimizer
    masking: MaskingConfig
    loss: LossConfig
    batch: Batch


def load_recipe(case: Case) -> tuple[ModelConfig, MaskingConfig, LossConfig]:
    raw = yaml.safe_load((ROOT / "recipes" / case.recipe).read_text())
    for field in raw["model"]["fields"]:
        field.update(dict(case.field_overrides))
    model = model_config_from_dict(raw["model"])
    training = raw.get("training") or {}
    masking = training.get("masking") or {"fields": {f.name: DEFAULT_MASKING for f in model.fields}}
    return model, MaskingConfig.from_dict(masking), LossConfig.from_dict(training.get("loss", {}))


def field_alpha(field: FieldModelConfig, batch_size: int) -> torch.Tensor:
    """(B, L, n_t, n_y, n_x, 7): 2020-01-28, hourly tokens, mid-latitudes, 0.25 degree."""
    n_t, n_y, n_x = field.token_count
    t, y, x = field.token_size
    shape = (batch_size, len(field.levels), n_t, n_y, n_x)
    grid = torch.meshgrid(
        torch.tensor(field.levels, dtype=torch.float32),
        torch.arange(n_t, dtype=torch.float32) * t,  # hours since the window's start
        40.0 + torch.arange(n_y, dtype=torch.float32) * y * 0.25,
        torch.arange(n_x, dtype=torch.float32) * x * 0.25,
        indexing="ij",
    )
    level, hour, lat, lon = (g.expand(shape) for g in grid)
    year, day, resolution = (torch.full(shape, v) for v in (2020.0, 28.0, 0.25))
    return torch.stack([year, day, hour % 24, level, lat, lon, resolution], dim=-1)


def synthetic_batch(config: ModelConfig, batch_size: int) -> Batch:
    """Standard normal tokens (normalised data) and plausible alpha for every field."""
    generator = torch.Generator().manual_seed(0)
    tokens = {
        f.name: torch.randn(
            (batch_size, len(f.levels), *f.token_count, *f.token_size), generator=generator
        )
        for f in config.fields
    }
    alpha = {f.name: field_alpha(f, batch_size) for f in config.fields}
    levels = tuple(f.levels for f in config.fields)
    meta = SampleMeta(np.datetime64("2020-01-28T00", "s"), 0, 0, 0, config.names, levels)
    return Batch(tokens, alpha, (meta,) * batch_size)


def build(case: Case) -> Setup:
    torch.manual_seed(0)
    model_config, masking, loss = load_recipe(case)
    model = Multiformer(model_config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.05)
    return Setup(model, optimizer, masking, loss, synthetic_batch(model_config, case.batch_size))


def step(setup: Setup, index: int) -> dict[str, int]:
    """One training step as the trainer makes it; returns M (targets per sample) per field."""
    generator = torch.Generator().manual_seed(index)
    inputs, targets = mask_batch(setup.batch, setup.masking, generator)
    setup.model.train()
    outputs = setup.model(inputs)
    total = combined_loss(outputs, targets, setup.loss).total
    setup.optimizer.zero_grad(set_to_none=True)
    total.backward()
    torch.nn.utils.clip_grad_norm_(setup.model.parameters(), 1.0)
    setup.optimizer.step()
    return {name: int(t.shape[1]) for name, t in targets.items()}


# --- analytic FLOPs -----------------------------------------------------------------------------


def tokens_of(field: FieldModelConfig) -> int:
    n_t, n_y, n_x = field.token_count
    return len(field.levels) * n_t * n_y * n_x


def layer_flop(
    field: FieldModelConfig, batch: int, sources: dict[str, tuple[int, int, int]]
) -> float:
    """Forward matmul FLOPs of one block; sources: name -> (tokens, width, heads) of cross heads."""
    d, h, n = field.embed_dim, field.num_heads, tokens_of(field)
    dh = d // h
    self_heads = h - sum(heads for _, _, heads in sources.values())
    rows = batch * n
    flop = 2 * rows * d * d * 2  # query and output projections
    flop += 2 * rows * d * 2 * self_heads * dh  # own keys and values
    flop += 2 * rows * d * round(d * field.mlp_ratio) * 2  # MLP
    flop += 4 * batch * self_heads * dh * n * n  # scores and weighted sum over itself
    for tokens, width, heads in sources.values():
        flop += 2 * batch * tokens * width * 2 * heads * dh  # the source's keys and values
        flop += 4 * batch * heads * dh * n * tokens
    return float(flop)


def field_forward_flop(config: ModelConfig, name: str, batch: int, targets: int) -> float:
    field = config.field(name)
    d, n = field.embed_dim, tokens_of(field)
    embed = 2 * batch * n * (field.token_points * d + alpha_feature_count(6) * d + d * d)
    coupled = {
        g: (tokens_of(config.field(g)), config.field(g).embed_dim, field.coupling_heads)
        for g in config.coupled(name)
    }
    encoder = field.encoder_layers * layer_flop(field, batch, coupled)
    to_encoder = {"encoder": (n, d, field.encoder_heads_in_decoder)}
    decoder = field.decoder_layers * layer_flop(field, batch, to_encoder)
    tail = 2 * batch * targets * field.tail_heads * d * field.token_points
    return float(embed + encoder + decoder + tail)


def analytic_step_flop(config: ModelConfig, batch: int, targets: dict[str, int]) -> float:
    """Forward + backward (2 x forward) matmul FLOPs of a step with M targets per field."""
    return 3 * sum(field_forward_flop(config, f, batch, m) for f, m in targets.items())


def mean_targets(config: ModelConfig, ratio: float) -> dict[str, int]:
    return {f.name: round(ratio * tokens_of(f)) for f in config.fields}


# --- one configuration, in its own process -------------------------------------------------------


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


@dataclass(frozen=True)
class Timed:
    wall_s: float
    cpu_s: float  # CPU time of the process: about 2 x wall_s when it has both cores to itself
    targets: dict[str, int]


# torch's counter knows the CUDA attention kernels only; the CPU's flash kernel takes the same
# arguments, so the same formulas apply (its backward counts the recomputed scores: 2.5 x forward).
def cpu_attention_flop(query: Shape, key: Shape, value: Shape, *args: Any, **kwargs: Any) -> int:
    return int(sdpa_flop_count(query, key, value))


def cpu_attention_backward_flop(
    grad_out: Shape, query: Shape, key: Shape, value: Shape, *args: Any, **kwargs: Any
) -> int:
    return int(sdpa_backward_flop_count(grad_out, query, key, value))


CPU_ATTENTION_FLOP = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: cpu_attention_flop,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: (
        cpu_attention_backward_flop
    ),
}


def counted_step(setup: Setup, index: int) -> tuple[Timed, float]:
    """A timed step under the FLOP counter (its per-op overhead is small beside these ops)."""
    with FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION_FLOP) as counter:
        (run,) = timed_steps(setup, index, 1)
    return run, float(counter.get_total_flops())


def timed_steps(setup: Setup, first: int, count: int) -> list[Timed]:
    runs = []
    for index in range(first, first + count):
        wall, cpu = time.perf_counter(), time.process_time()
        targets = step(setup, index)
        runs.append(Timed(time.perf_counter() - wall, time.process_time() - cpu, targets))
    return runs


def top_ops(setup: Setup, index: int, rows: int = 15) -> list[dict[str, Any]]:
    """The step's operators by self CPU time (one profiled step)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        step(setup, index)
    events = sorted(profiler.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return [
        {
            "op": e.key,
            "self_s": e.self_cpu_time_total / 1e6,
            "share": e.self_cpu_time_total / total,
            "calls": e.count,
        }
        for e in events[:rows]
    ]


def run_case(name: str, profile: bool) -> dict[str, Any]:
    case = CASES[name]
    mmap_threshold = MMAP_THRESHOLD if return_large_frees_to_os() else None  # as the trainer
    load_before = os.getloadavg()[0]
    setup = build(case)
    config = setup.model.config
    rss_built = peak_rss_mb()
    first, counted = counted_step(setup, 0)
    analytic = analytic_step_flop(config, case.batch_size, first.targets)
    # Without warm-up steps (base: minutes per step) the counted first step is the timed one.
    timed_steps(setup, 1, case.warmup - 1)
    runs = timed_steps(setup, case.warmup, case.steps - (case.warmup == 0))
    runs = [first, *runs] if case.warmup == 0 else runs
    tokens = case.batch_size * sum(tokens_of(f) for f in config.fields)
    times = [run.wall_s for run in runs]
    result: dict[str, Any] = {
        "case": asdict(case),
        "parameters": sum(p.numel() for p in setup.model.parameters()),
        "tokens_per_step": tokens,
        "step_s": times,
        "median_step_s": statistics.median(times),
        "tokens_per_s": tokens / statistics.median(times),
        "cpu_s": [run.cpu_s for run in runs],
        "load_average_1min": [load_before, os.getloadavg()[0]],  # other processes, before, after
        "targets_per_step": [run.targets for run in runs],
        "step_flop_analytic": [
            analytic_step_flop(config, case.batch_size, run.targets) for run in runs
        ],
        "first_step": {
            "targets": first.targets,
            "flop_counted": counted,
            "flop_analytic": analytic,
        },
        "flop_analytic_at_ratio_0.25": analytic_step_flop(
            config, case.batch_size, mean_targets(config, 0.25)
        ),
        "rss_after_build_mb": rss_built,
        "peak_rss_mb": peak_rss_mb(),
        "memory_settings": {
            "activation_checkpointing": config.activation_checkpointing,
            "malloc_mmap_threshold_bytes": mmap_threshold,  # None: glibc's dynamic default
        },
    }
    if profile:
        result["top_ops"] = top_ops(setup, case.warmup + case.steps)
    return result


# --- the CPU's matmul rate -----------------------------------------------------------------------


def matmul_gflops(a: torch.Tensor, b: torch.Tensor, seconds: float = 2.0) -> dict[str, float]:
    """GFLOP per second of wall time, and per CPU second of the process x THREADS."""
    a @ b
    flop = 2 * a.shape[-2] * a.shape[-1] * b.shape[-1] * (a.numel() // a.shape[-2:].numel())
    count, wall, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - wall < seconds:
        a @ b
        count += 1
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"wall": flop * count / wall / 1e9, "cpu": THREADS * flop * count / cpu / 1e9}


def attention_gflops(batch: int, heads: int, tokens: int, head_dim: int) -> dict[str, float]:
    """Achieved rate of F.scaled_dot_product_attention forward and backward at a model shape."""
    q, k, v = (torch.randn(batch, heads, tokens, head_dim, requires_grad=True) for _ in range(3))
    flop = 4 * batch * heads * tokens * tokens * head_dim
    out = F.scaled_dot_product_attention(q, k, v)
    out.backward(torch.ones_like(out))
    started = time.perf_counter()
    out = F.scaled_dot_product_attention(q, k, v)
    forward = time.perf_counter() - started
    out.backward(torch.ones_like(out))
    backward = time.perf_counter() - started - forward
    return {"forward_gflops": flop / forward / 1e9, "backward_gflops": 2 * flop / backward / 1e9}


def matmul_rates() -> dict[str, Any]:
    n = 5 * 12 * 6 * 12 * 2  # bench-single's B * N rows
    shapes = {
        "2048x2048 @ 2048x2048": ((2048, 2048), (2048, 2048)),
        f"{n}x256 @ 256x256 (query, output)": ((n, 256), (256, 256)),
        f"{n}x256 @ 256x512 (keys and values, MLP in)": ((n, 256), (256, 512)),
        f"{n}x512 @ 512x256 (MLP out)": ((n, 512), (512, 256)),
        "16x(2160x256 @ 256x243) (tail)": ((16, 2160, 256), (16, 256, 243)),
    }
    rates = {key: matmul_gflops(torch.randn(a), torch.randn(b)) for key, (a, b) in shapes.items()}
    attention = attention_gflops(2, 8, 5 * 12 * 6 * 12, 32)
    return {"matmul_gflops": rates, "attention_2x8x4320x32": attention}


# --- driver --------------------------------------------------------------------------------------


def in_subprocess(args: list[str]) -> dict[str, Any]:
    """The child's JSON, or its exit status and last error line (e.g. killed out of memory)."""
    command = [sys.executable, __file__, *args]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [""])[-1]
        return {"error": f"exit status {done.returncode}: {last}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def efficiency(result: dict[str, Any], gflops: dict[str, float]) -> dict[str, float]:
    """Median over timed steps of step time / (step FLOPs / matmul rate): by wall time, and by
    the process's CPU time (step and matmul alike), a cross-check when the cores are shared."""
    ideal = [flop / 1e9 for flop in result["step_flop_analytic"]]
    by_wall = [t * gflops["wall"] / i for t, i in zip(result["step_s"], ideal, strict=True)]
    by_cpu = [t / THREADS * gflops["cpu"] / i for t, i in zip(result["cpu_s"], ideal, strict=True)]
    return {"wall": statistics.median(by_wall), "cpu": statistics.median(by_cpu)}


def summarise(results: dict[str, Any], rates: dict[str, Any]) -> dict[str, Any]:
    gflops = rates["matmul_gflops"]["2048x2048 @ 2048x2048"]
    summary = {}
    for name, result in results.items():
        if "error" in result:
            summary[name] = result
            continue
        summary[name] = {
            "median_step_s": result["median_step_s"],
            "median_cpu_s": statistics.median(result["cpu_s"]),
            "tokens_per_s": result["tokens_per_s"],
            "peak_rss_mb": result["peak_rss_mb"],
            "memory_settings": result["memory_settings"],
            "time_over_matmul_bound": efficiency(result, gflops),
        }
    if "bench-single" in summary:
        single = summary["bench-single"]
        single["targets"] = {"time_over_matmul_bound": TARGET_RATIO, "peak_rss_mb": TARGET_RSS_MB}
        single["issue_flop"] = ISSUE_FLOP
    return summary


def report(names: list[str], profile: bool) -> dict[str, Any]:
    rates = in_subprocess(["--matmul"])
    results = {}
    for name in names:
        flags = ["--case", name] + (["--profile"] if profile and name == "bench-single" else [])
        results[name] = in_subprocess(flags)
        print(f"{name}: {results[name].get('median_step_s', results[name].get('error'))}")
    return {
        "machine": {"cpus": THREADS, "torch_threads": THREADS, "processor": platform.processor()},
        "torch": torch.__version__,
        "python": platform.python_version(),
        "precision": "fp32",
        "data": "synthetic: standard normal tokens, plausible alpha, no store",
        "rates": rates,
        "summary": summarise(results, rates),
        "cases": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument("--profile", action="store_true", help="top ops of bench-single")
    parser.add_argument("--out", type=Path, default=RESULTS / "train.json")
    parser.add_argument("--case", choices=sorted(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--matmul", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    if args.case:
        print(json.dumps(run_case(args.case, args.profile)))
    elif args.matmul:
        print(json.dumps(matmul_rates()))
    else:
        results = report(args.only, args.profile)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps(results["summary"], indent=2))


if __name__ == "__main__":
    main()
