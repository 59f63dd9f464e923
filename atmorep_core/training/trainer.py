"""`train`: the multiformer learns from a store, on one CPU or many GPUs (torchrun + DDP).

Every step reads its samples by global index (data/dataset.py) and draws its masking from a
generator seeded by (seed, step), and checkpoints hold the optimizer, schedule and RNG states:
so a run resumed from a checkpoint makes exactly the steps the uninterrupted run would have made.

A run folder holds one run: `plan_start` refuses a folder with checkpoints unless the run resumes
them or restarts, and a run that does not resume clears what an earlier run wrote there before
its first write (never before: a run refused while setting up leaves the folder as it was).
"""

from __future__ import annotations

import ctypes
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from atmorep_core.data.batch import Batch
from atmorep_core.data.dataset import IndexedNeighbourhoods, StepIndices, make_loader
from atmorep_core.data.normalize import normalisation_record
from atmorep_core.data.sampler import NeighbourhoodSampler, SamplerConfig
from atmorep_core.errors import ConfigError
from atmorep_core.io.store import Store
from atmorep_core.model import checkpoint
from atmorep_core.model.assembly import FieldState
from atmorep_core.model.config import model_config_from_dict
from atmorep_core.model.multiformer import Multiformer
from atmorep_core.questions.masking import MaskingConfig, mask_batch, split_mixtures
from atmorep_core.training import distributed, parallel
from atmorep_core.training.losses import combined_loss
from atmorep_core.training.metrics import MetricsLog
from atmorep_core.training.recipe import TrainingSection, TrainRecipe
from atmorep_core.training.schedule import warmup_cosine
from atmorep_core.training.validation import move, validate

_LOGS = ("metrics.csv", "validation.csv")
# What a run writes into its folder besides its checkpoints (step-N/): cleared by a new run.
_RUN_FILES = (checkpoint.LATEST, f"{checkpoint.LATEST}.tmp", "recipe.yaml", *_LOGS, "tensorboard")
_ENCODER_PARTS = ("embedding", "encoder")  # what encoder_lr_scale slows or freezes
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)
MMAP_THRESHOLD = 1 << 20  # bytes: allocations from this size up get their own mmap


@dataclass(frozen=True)
class StepReport:
    """What the progress display shows after a step."""

    step: int  # 1-based: steps done
    steps: int
    loss: float
    field_losses: dict[str, float]
    learning_rate: float
    tokens_per_second: float


@dataclass(frozen=True)
class RunStart:
    """How a run begins in its folder (`plan_start`)."""

    resume: bool  # continue from the folder's latest checkpoint; else clear the folder first
    note: str | None = None  # for the user, where the run does otherwise than asked


def plan_start(run: Path, resume: bool = False, restart: bool = False) -> RunStart:
    """How to begin in `run` for --resume / --restart; ConfigError if the folder holds
    checkpoints and neither is given, so that two runs never mix in one folder."""
    if resume and restart:
        raise ConfigError("--resume and --restart: choose one (continue the run, or start again)")
    if resume:
        if (run / checkpoint.LATEST).exists():
            return RunStart(resume=True)
        return RunStart(
            False, f"--resume: {run} holds no checkpoint yet; training starts at step 0"
        )
    saved = sorted(p.name for p in run.glob("step-*"))
    if saved and not restart:
        raise ConfigError(
            f"--run-dir {run}: holds a run (checkpoints up to {saved[-1]}); --resume continues it, "
            "--restart clears its checkpoints, metrics and logs and starts again"
        )
    return RunStart(resume=False)


@dataclass
class TrainSummary:
    run: Path
    first_step: int
    last_step: int
    final_loss: float
    validation: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Run:
    """Everything one process trains with."""

    recipe: TrainRecipe
    context: distributed.Context
    model: Multiformer
    trained: torch.nn.Module  # the model as stepped: DDP-wrapped and/or compiled
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    train_data: IndexedNeighbourhoods
    validation_data: IndexedNeighbourhoods | None
    validation: dict[str, MaskingConfig]  # the recipe's, each mixture's choices apart
    first_step: int
    # What every checkpoint of the run records besides its state: read once, when the run starts.
    normalisation: dict[str, Any]
    data_window: dict[str, Any]


def train(
    recipe: TrainRecipe,
    run: Path,
    start: RunStart,
    init_fields: Mapping[str, Path] | None = None,
    on_step: Callable[[StepReport], None] | None = None,
    device: str | None = None,
) -> TrainSummary:
    """Train per the recipe into the run folder (checkpoints, metrics, resolved recipe), as
    `start` (from `plan_start`) says: resuming its latest checkpoint, or clearing it first."""
    return_large_frees_to_os()
    context = distributed.start(device)
    try:
        state = _set_up(recipe, run, context, start.resume, init_fields or {})
        return _loop(state, run, on_step or (lambda report: None))
    finally:
        distributed.stop()


def return_large_frees_to_os() -> bool:
    """Have glibc give freed blocks of 1 MiB and more back to the OS; False where not glibc.

    glibc keeps freed heap blocks for reuse and raises its mmap threshold after each large free,
    so a step's freed activations stay in the process and the peak RSS grows step after step
    (BENCHMARKS.md, "Training step"). A fixed threshold serves large tensors by mmap, returned on
    free. The environment variable MALLOC_MMAP_THRESHOLD_ does the same, but only if set before
    the process starts.
    """
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None)  # the C library this process already runs on
    if not hasattr(libc, "gnu_get_libc_version"):  # another libc (musl): other parameters
        return False
    return int(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) == 1  # 1: success


def _set_up(
    recipe: TrainRecipe,
    run: Path,
    context: distributed.Context,
    resume: bool,
    init_fields: Mapping[str, Path],
) -> _Run:
    # Scores of a random mix of strategies would mean little: each choice is validated apart.
    validation = split_mixtures(recipe.validation)
    torch.manual_seed(recipe.training.seed)
    model = Multiformer(recipe.model)
    for name, source in init_fields.items():
        model.load_field_state_dict(name, _field_state(source, name))
    model.to(context.device)
    parallel.shard(model, context, recipe.training.parallel)
    optimizer = torch.optim.AdamW(
        _parameter_groups(model, recipe.training),
        lr=recipe.training.learning_rate,
        betas=recipe.training.betas,
        weight_decay=recipe.training.weight_decay,
    )
    scheduler = warmup_cosine(
        optimizer, recipe.training.warmup_steps, recipe.training.steps, recipe.training.lr_floor
    )
    first_step = _restore(run, model, optimizer, scheduler) if resume else 0
    trained = parallel.wrap(model, context, recipe.training.parallel)
    if recipe.training.compile:
        trained = torch.compile(trained)  # type: ignore[assignment]
    store = Store.open(recipe.data.store)
    train_data, validation_data = _datasets(recipe, store)
    if context.is_main:  # all that could refuse the run is done: now the folder changes
        if not resume:
            _clear(run)
        run.mkdir(parents=True, exist_ok=True)
        (run / "recipe.yaml").write_text(yaml.safe_dump(recipe.raw, sort_keys=False))
    return _Run(
        recipe, context, model, trained, optimizer, scheduler, train_data, validation_data,
        validation, first_step, normalisation_record(store, _kinds(recipe)), _data_window(recipe),
    )  # fmt: skip


def _clear(run: Path) -> None:
    """Remove what earlier runs wrote into the folder (checkpoints, metrics, logs, recipe);
    anything else in it stays."""
    for path in [*run.glob("step-*"), *(run / name for name in _RUN_FILES)]:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _parameter_groups(model: torch.nn.Module, training: TrainingSection) -> list[dict[str, Any]]:
    """The decoders and tails at the full learning rate (first: the rate reported), the embeddings
    and encoders at `encoder_lr_scale` times it, or frozen (left out, no gradient) at 0."""
    encoder_scale = training.encoder_lr_scale
    encoders: list[torch.nn.Parameter] = []
    rest: list[torch.nn.Parameter] = []
    for name, parameter in model.named_parameters():
        is_encoder = name.split(".")[2] in _ENCODER_PARTS  # fields.<field>.<part>. ...
        if is_encoder and encoder_scale == 0.0:
            parameter.requires_grad_(False)
        (encoders if is_encoder else rest).append(parameter)
    groups: list[dict[str, Any]] = [{"params": rest}]
    if encoder_scale > 0.0 and encoders:
        groups.append({"params": encoders, "lr": encoder_scale * training.learning_rate})
    return groups


def _field_state(source: Path, name: str) -> FieldState:
    """A pre-trained field's weights and architecture from a run or checkpoint folder."""
    saved = checkpoint.load(source)
    config = model_config_from_dict(saved.config["model"])
    prefix = f"fields.{name}."
    tensors = {k[len(prefix) :]: v for k, v in saved.model.items() if k.startswith(prefix)}
    return FieldState(config.field(name), tensors)


def _datasets(
    recipe: TrainRecipe, store: Store
) -> tuple[IndexedNeighbourhoods, IndexedNeighbourhoods | None]:
    config = SamplerConfig.from_dict(
        {**recipe.model.sampler_section(), "reader": recipe.data.reader}
    )
    target = None if recipe.data.target is None else Store.open(recipe.data.target)
    seed, per_epoch = recipe.training.seed, recipe.training.samples_per_epoch
    train = NeighbourhoodSampler(store, config, _window(recipe.data.train), target)
    data = IndexedNeighbourhoods(train, per_epoch, seed)
    if recipe.data.validation is None:
        return data, None
    held_back = NeighbourhoodSampler(store, config, _window(recipe.data.validation), target)
    return data, IndexedNeighbourhoods(held_back, per_epoch, seed + 1)


def _window(times: Any) -> tuple[np.datetime64, np.datetime64] | None:
    if times is None:
        return None
    first, last = (np.datetime64(t.replace(tzinfo=None), "s") for t in times)
    return first, last


def _restore(
    run: Path,
    model: Multiformer,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
) -> int:
    saved = checkpoint.load(run)
    parallel.load_full_states(model, optimizer, saved.model, saved.optimizer)
    if saved.scheduler is not None:
        scheduler.load_state_dict(saved.scheduler)
    torch.set_rng_state(saved.torch_rng["cpu"])
    return saved.step


def _loop(state: _Run, run: Path, on_step: Callable[[StepReport], None]) -> TrainSummary:
    training = state.recipe.training
    resumed = state.first_step if state.first_step > 0 else None
    log = (
        MetricsLog(run / "metrics.csv", resume_after_step=resumed)
        if state.context.is_main
        else None
    )
    validation_log = (
        MetricsLog(run / "validation.csv", resume_after_step=resumed)
        if state.context.is_main
        else None
    )
    loss = float("nan")
    validation: list[dict[str, Any]] = []
    step = state.first_step
    for step, batch in zip(range(state.first_step, training.steps), _batches(state), strict=False):
        started = time.perf_counter()
        loss, field_losses, learning_rate = _step(state, batch, step)
        elapsed = time.perf_counter() - started
        report = StepReport(
            step + 1, training.steps, loss, field_losses,
            learning_rate, _tokens(batch, state.context) / elapsed,
        )  # fmt: skip
        if log is not None:
            log.write(_row(report))
        on_step(report)
        validation = _maybe_validate(state, step + 1, validation_log) or validation
        if (step + 1) % training.checkpoint_every == 0 or step + 1 == training.steps:
            _save(state, run, step + 1)
    for metrics in (log, validation_log):
        if metrics is not None:
            metrics.close()
    return TrainSummary(run, state.first_step, max(step + 1, state.first_step), loss, validation)


def _batches(state: _Run) -> Iterator[Batch]:
    training, context = state.recipe.training, state.context
    indices = StepIndices(
        state.first_step, training.steps, training.batch_size, context.rank, context.world_size
    )
    loader = make_loader(
        state.train_data, training.batch_size, training.num_workers, sampler=indices
    )
    yield from loader  # masking runs on the CPU (its generator lives there); see `move`


def _step(state: _Run, batch: Batch, step: int) -> tuple[float, dict[str, float], float]:
    """One optimizer step; returns the loss, the loss per field and the learning rate used."""
    training = state.recipe.training
    generator = torch.Generator().manual_seed(training.seed * 1_000_003 + step)
    inputs, targets = move(
        *mask_batch(batch, state.recipe.masking, generator), state.context.device
    )
    state.trained.train()
    with _autocast(training.precision, state.context.device):
        outputs = state.trained(inputs)
        breakdown = combined_loss(outputs, targets, state.recipe.loss)
    state.optimizer.zero_grad(set_to_none=True)
    breakdown.total.backward()
    torch.nn.utils.clip_grad_norm_(state.model.parameters(), training.grad_clip)
    learning_rate = float(state.optimizer.param_groups[0]["lr"])
    state.optimizer.step()
    state.scheduler.step()
    total = float(distributed.mean_over_ranks(breakdown.total.detach()))
    per_field = {
        name: float(distributed.mean_over_ranks(torch.stack(list(parts.values())).sum()))
        for name, parts in breakdown.components.items()
    }
    return total, per_field, learning_rate


def _autocast(precision: str, device: torch.device) -> AbstractContextManager[Any]:
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def _tokens(batch: Batch, context: distributed.Context) -> int:
    """Tokens of all fields in a step, over all processes."""
    per_rank = sum(int(t.shape[:5].numel()) for t in batch.tokens.values())
    return per_rank * context.world_size


def _row(report: StepReport) -> dict[str, Any]:
    row: dict[str, Any] = {"step": report.step, "lr": report.learning_rate, "loss": report.loss}
    row |= {f"loss_{name}": value for name, value in report.field_losses.items()}
    return row | {"tokens_per_s": report.tokens_per_second}


def _maybe_validate(state: _Run, done: int, log: MetricsLog | None) -> list[dict[str, Any]] | None:
    training = state.recipe.training
    due = done % training.validate_every == 0 or done == training.steps
    # A sharded model needs every process in its forward passes; a whole one only the first.
    joins = state.context.is_main or parallel.shards(state.context, training.parallel)
    if state.validation_data is None or not due or not joins:
        return None
    rows = validate(
        state.model, state.validation_data, state.validation, state.recipe.loss,
        training.validation_batches, training.batch_size, training.seed, state.context.device,
    )  # fmt: skip
    for row in rows:
        if log is not None:
            log.write({"step": done, **row})
    return rows


def _save(state: _Run, run: Path, done: int) -> None:
    weights, moments = parallel.full_states(state.model, state.optimizer)  # every process joins
    if not state.context.is_main:
        return
    saved = checkpoint.Checkpoint(
        step=done,
        model=weights,
        config=state.recipe.raw,
        normalisation=state.normalisation,
        data_window=state.data_window,
        optimizer=moments,
        scheduler=state.scheduler.state_dict(),
        torch_rng={"cpu": torch.get_rng_state()},
    )
    checkpoint.save(run, saved)


def _kinds(recipe: TrainRecipe) -> dict[str, str]:
    return {field.name: field.normalisation for field in recipe.model.fields}


def _data_window(recipe: TrainRecipe) -> dict[str, Any]:
    def text(times: Any) -> list[str] | None:
        return None if times is None else [t.isoformat() for t in times]

    data = recipe.data
    return {
        "store": str(data.store),
        "target": None if data.target is None else str(data.target),
        "train": text(data.train),
        "validation": text(data.validation),
    }
