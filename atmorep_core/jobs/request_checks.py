"""A product's request checked against its checkpoint and input before any work.

Without these checks a product fails late and at a cost: a `--plot` field the checkpoint lacks
after every product file was written, `--lead 100000000h` after days of model calls, `--members
100000000` once the memory is gone. `check_product` runs before the weights are loaded, GRIB
input is ingested or the output folder is made. It reads the checkpoint's configuration without
its weights (`describe`), opens the input store's metadata (the store named, or the training
store; with GRIB input the training store, whose grid and time step are the model's), plans the
request with the run's own planning functions, and refuses in one line (ConfigError, exit 2):

- members or a batch below 1, an area outside the grid, a lead, span or interval that is not a
  positive whole multiple of the model's time step, a downscaling target grid it cannot find;
- `--plot` fields the checkpoint lacks, and `--plot-lead` / `--plot-time` that are no step of
  the product;
- a request whose estimated memory (`Estimate`) exceeds the machine's physical memory; the
  message gives the estimate and the model calls it would take.

`check_fields` does the same for the `--fields` of `correct` and `bias-correct`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import torch

from atmorep_core.engine.tiling import Tiling, area_from_bounds, tile
from atmorep_core.engine.time_windows import TimeTokens
from atmorep_core.engine.trained import TrainedModel, model_config
from atmorep_core.errors import ConfigError, InputDataError
from atmorep_core.grid import LatLonGrid
from atmorep_core.io.store import Store
from atmorep_core.jobs.product_job import ProductJob
from atmorep_core.model import checkpoint
from atmorep_core.model.multiformer import Multiformer
from atmorep_core.product_outputs import OutputOptions
from atmorep_core.products import downscale, interpolate
from atmorep_core.products.correct_input import choose_fields
from atmorep_core.products.downscale import DownscaleRequest
from atmorep_core.products.forecast import ForecastRequest, plan_lead, store_step
from atmorep_core.products.interpolate import InterpolationRequest
from atmorep_core.rotated_grid import target_grid

Request = ForecastRequest | InterpolationRequest | DownscaleRequest

HOUR = np.timedelta64(3600, "s")
FLOAT32 = 4  # bytes: products, states and weights are float32
# Copies of a product's float32 values a run holds at its peak: the answers kept per iteration or
# window (a time blend's float64 sums count twice), the stitched product, and what is written.
PRODUCT_COPIES = 4
# Activations per token of one transformer layer in widths (queries, keys and values, attention
# output, the MLP's hidden layer, residuals): inference keeps no other layer's.
LAYER_WIDTHS = 12


@dataclass(frozen=True)
class Estimate:
    """What a product run holds at its peak, and how many times it calls the model."""

    product_bytes: int  # the product's values, in all the copies a run holds
    engine_bytes: int  # the model's weights and one batch's activations
    model_calls: int

    @property
    def memory_bytes(self) -> int:
        return self.product_bytes + self.engine_bytes

    def describe(self) -> str:
        return (
            f"about {_size(self.memory_bytes)} of memory ({_size(self.product_bytes)} for the "
            f"product, {_size(self.engine_bytes)} for the model) and {self.model_calls:,} model "
            "calls"
        )


@dataclass(frozen=True)
class _Shape:
    """A request in the model's terms: the size of what a run holds, and the product's steps."""

    asked: str  # the options that set the size, as the message names them
    held_steps: int  # time steps held per member: every one computed, also those not written
    hours: range  # the product's steps, hours after its first time (what maps may name)
    questions: int  # tile sweeps: iterations or time windows, per member where members diverge
    first: datetime | None = None  # maps named by time (--plot-time) from here; None: by lead


def describe(path: Path) -> TrainedModel:
    """A checkpoint's model, configuration and statistics without its weights: the model is
    built on torch's meta device, so nothing is allocated or read but the checkpoint's JSON."""
    folder, state = checkpoint.read_state(path)
    config = model_config(folder, state["config"])
    with torch.device("meta"):
        model = Multiformer(config)
    return TrainedModel(
        model, config, state["normalisation"], state["config"], state["step"], folder
    )


def check_product(job: ProductJob, request: Request, runs: int = 1) -> Estimate:
    """ConfigError (one line) for a request that cannot run or would not fit in memory, before
    any work; else the estimate. `runs`: products held at once (a counterfactual holds three)."""
    trained = describe(job.checkpoint)
    _check_counts(request)
    store = _reference_store(job, trained)
    job.statistics(trained)  # a missing statistics store, before any work
    if isinstance(request, DownscaleRequest):
        downscale.trained_strategy(trained)
        if request.target is not None:
            target_grid(request.target)
        shape = _downscale_shape(request, trained, _step(trained, None))
        fine = _training_store(trained)  # the product's grid
        tiling = _tiling(trained, None if fine is None else fine.grid, None)
    else:
        shape = _shape(request, trained, store)
        grid = None if store is None else store.grid
        tiling = _tiling(trained, grid, None if job.grib_inputs else request.area)
    check_maps(job.outputs, trained.config.names, shape.hours, shape.first)
    estimate = _estimate(trained, tiling, shape, request, runs)
    machine = physical_memory()
    if estimate.memory_bytes > machine:
        raise ConfigError(
            f"{shape.asked}: this would need {estimate.describe()}, more than the "
            f"{_size(machine)} of memory this machine has; ask for less"
        )
    return estimate


def check_maps(
    outputs: OutputOptions,
    fields: Sequence[str],
    hours: Sequence[int],
    first: datetime | None = None,
) -> None:
    """ConfigError for a map of a field the product lacks or at a step it does not have; steps
    are leads (--plot-lead) or, given the product's `first` time, times (--plot-time)."""
    for name in outputs.plot_fields:
        if name not in fields:
            raise ConfigError(f"--plot {name}: not a field of the product ({', '.join(fields)})")
    option = "--plot-lead" if first is None else "--plot-time"
    for hour in outputs.plot_steps or ():
        if hour not in hours:
            raise ConfigError(
                f"{option} {_when(hour, first)}: not a step of the product ({_steps(hours, first)})"
            )


def check_fields(checkpoint: Path, fields: Sequence[str]) -> None:
    """ConfigError for `--fields` the checkpoint lacks (correct, bias-correct), before any work."""
    try:
        choose_fields(describe(checkpoint).config.names, fields)
    except InputDataError as unknown:  # a name no field has: an option's error, not the input's
        raise ConfigError(f"--fields: {unknown}") from None


def physical_memory() -> int:
    """Bytes of physical memory of this machine."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _check_counts(request: Request) -> None:
    if request.members < 1:
        raise ConfigError(f"--members {request.members}: at least 1")
    if request.batch_size < 1:
        raise ConfigError(f"--batch {request.batch_size}: at least 1")


def _reference_store(job: ProductJob, trained: TrainedModel) -> Store | None:
    """The input store (its metadata only); with GRIB input, which is not ingested yet, the
    training store if it is still there."""
    return _training_store(trained) if job.grib_inputs else job.input_store(trained)


def _training_store(trained: TrainedModel) -> Store | None:
    """The store the model was trained on, if it is still there: its grid and step are the
    model's."""
    path = trained.training_store
    return Store.open(path) if (path / "zarr.json").exists() else None


def _step(trained: TrainedModel, store: Store | None) -> np.timedelta64:
    """The time step a request is planned in: the input store's, else the model's."""
    return interpolate.model_step(trained) if store is None else store_step(trained, store)


def _shape(
    request: ForecastRequest | InterpolationRequest, trained: TrainedModel, store: Store | None
) -> _Shape:
    if isinstance(request, ForecastRequest):
        return _forecast_shape(request, trained, _step(trained, store))
    return _interpolation_shape(request, trained, interpolate.model_step(trained))


def _forecast_shape(
    request: ForecastRequest, trained: TrainedModel, step: np.timedelta64
) -> _Shape:
    time_tokens = request.time_tokens or trained.forecast_time_tokens()
    if time_tokens < 1:
        raise ConfigError(f"--time-tokens {time_tokens}: at least 1")
    plan = plan_lead(trained, step, request, time_tokens)
    hours = _hours(step)
    every = plan.every * hours
    # Every member follows its own trajectory after the first iteration.
    diverged = request.members if request.members > 1 else 1
    return _Shape(
        f"--lead {request.lead_hours}h with --members {request.members}",
        plan.iterations * plan.ahead,
        range(every, plan.lead * hours + 1, every),
        1 + (plan.iterations - 1) * diverged,
    )


def _interpolation_shape(
    request: InterpolationRequest, trained: TrainedModel, step: np.timedelta64
) -> _Shape:
    interpolate.check_interval(request.input_every_hours)
    count = interpolate.output_count(request, step)
    window = TimeTokens.of({f.name: f for f in trained.config.fields}).window
    axis = count + 2 * (window - 1)  # the output with a window's context either side
    # At most a window per step of the axis (each starts or ends at a given step).
    first = None if request.reconstruct else request.start  # a counterfactual's maps: leads
    return _Shape(_span(request), axis, _spaced(count, step), axis, first)


def _downscale_shape(
    request: DownscaleRequest, trained: TrainedModel, step: np.timedelta64
) -> _Shape:
    count = downscale.output_count(request, step, trained)
    windows = math.ceil(count / trained.extent[0])
    return _Shape(_span(request), count, _spaced(count, step), windows, request.start)


def _tiling(
    trained: TrainedModel,
    grid: LatLonGrid | None,
    bounds: tuple[float, float, float, float] | None,
) -> Tiling | None:
    """The tiles over the area (ConfigError if it holds no grid point); None if the grid is
    not known before the input is ingested."""
    if grid is None:
        return None
    area = None if bounds is None else area_from_bounds(grid, bounds)
    return tile(grid, trained.extent[1:], area)


def _estimate(
    trained: TrainedModel, tiling: Tiling | None, shape: _Shape, request: Request, runs: int
) -> Estimate:
    extent = trained.extent
    rows, columns = (extent[1], extent[2]) if tiling is None else tiling.domain_shape
    tiles = 1 if tiling is None else len(tiling.positions)
    levels = sum(len(f.levels) for f in trained.config.fields)
    values = request.members * shape.held_steps * levels * rows * columns
    calls = runs * shape.questions * math.ceil(tiles / request.batch_size)
    return Estimate(
        values * FLOAT32 * PRODUCT_COPIES * runs, _engine_bytes(trained, request), calls
    )


def _engine_bytes(trained: TrainedModel, request: Request) -> int:
    """The weights and one batch's activations of one layer per field."""
    weights = sum(p.numel() for p in trained.model.parameters())
    per_tile = 0
    for f in trained.config.fields:
        tokens = len(f.levels) * math.prod(f.token_count)
        per_tile += tokens * (LAYER_WIDTHS * f.embed_dim + f.tail_heads * f.token_points)
    return (weights + request.batch_size * per_tile) * FLOAT32


def _hours(step: np.timedelta64) -> int:
    if step % HOUR:
        raise ConfigError(f"the input's time step {step} is not a whole number of hours")
    return int(step // HOUR)


def _spaced(count: int, step: np.timedelta64) -> range:
    hours = _hours(step)
    return range(0, count * hours, hours)


def _span(request: InterpolationRequest | DownscaleRequest) -> str:
    members = f"with --members {request.members}"
    if isinstance(request, InterpolationRequest) and request.reconstruct:  # a counterfactual's
        hours = int((request.end - request.start).total_seconds()) // 3600
        return f"--init {request.start:%Y-%m-%dT%H} --lead {hours}h {members}"
    return f"--start {request.start:%Y-%m-%dT%H} .. --end {request.end:%Y-%m-%dT%H} {members}"


def _steps(hours: Sequence[int], first: datetime | None) -> str:
    """A product's steps for a message: all of a few, else the first two and the last."""
    if len(hours) <= 6:
        return ", ".join(_when(h, first) for h in hours)
    return f"{_when(hours[0], first)}, {_when(hours[1], first)}, .. {_when(hours[-1], first)}"


def _when(hours: int, first: datetime | None) -> str:
    """A step as a lead (6h) or, after `first`, a time (2019-03-22T06)."""
    return f"{hours}h" if first is None else f"{first + timedelta(hours=hours):%Y-%m-%dT%H}"


def _size(size: int) -> str:
    """Bytes for a message: 512 MiB, 23.4 GiB, 42.6 TiB."""
    value, units = size / 2**20, ("MiB", "GiB", "TiB", "PiB")
    for unit in units[:-1]:
        if value < 1024:
            return f"{value:.3g} {unit}"
        value /= 1024
    return f"{value:,.0f} {units[-1]}"
