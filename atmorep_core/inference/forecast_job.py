"""`atmorep forecast` as one job: find the input, guard the output folder, forecast, write.

The input is a store (`--store`), GRIB files (`--input`, ingested into a cache store in the output
folder with `prepare`, so a rerun reads nothing twice) or, by default, the store the checkpoint
was trained on. Locally normalised fields take their statistics from the training store (a few
days of input cannot give per-grid-point monthly statistics); `--stats-store` names another.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from atmorep_core.data.ingest_plan import IngestOptions
from atmorep_core.data.prepare import prepare
from atmorep_core.errors import StoreError
from atmorep_core.inference.engine import Progress
from atmorep_core.inference.forecast import ForecastRequest, forecast
from atmorep_core.inference.trained import TrainedModel, load_trained
from atmorep_core.io.product_outputs import OutputOptions, write_outputs
from atmorep_core.io.run_folder import ProductRun
from atmorep_core.io.store import Store

INPUT_CACHE = ".inputs.zarr"


@dataclass(frozen=True)
class ForecastJob:
    checkpoint: Path
    out: Path
    request: ForecastRequest
    store: Path | None = None
    grib_inputs: tuple[Path, ...] = ()
    statistics_store: Path | None = None
    outputs: OutputOptions = field(default_factory=OutputOptions)
    device: str = "cpu"
    force: bool = False  # recompute even when the outputs are up to date


def run_forecast_job(job: ForecastJob, progress: Progress | None = None) -> dict[str, Any]:
    """Forecast and write the products; the manifest (with `"skipped": True` if up to date)."""
    trained = load_trained(job.checkpoint, job.device)
    run = ProductRun(job.out, f"forecast_{job.request.init:%Y%m%dT%H%M}", _request(job, trained))
    with run.locked():
        earlier = None if job.force else run.up_to_date()
        if earlier is not None:
            return {**earlier, "skipped": True}
        started = time.perf_counter()
        store = _input_store(job, trained)
        product = forecast(trained, store, _statistics_store(job, trained), job.request, progress)
        outputs = write_outputs(run, product, job.outputs)
        summary = {
            "init": job.request.init.isoformat(),
            "steps_hours": list(product.steps_hours),
            "members": product.members,
            "fields": [f.name for f in product.fields],
            "grid": asdict(product.fields[0].grid),
            "seconds": round(time.perf_counter() - started, 2),
        }
        return {**run.finish(outputs, summary), "skipped": False}


def _request(job: ForecastJob, trained: TrainedModel) -> dict[str, Any]:
    """Everything the outputs depend on: a rerun with the same request is a no-op."""
    return {
        "checkpoint": str(trained.folder.resolve()),
        "checkpoint_step": trained.step,
        "store": None if job.store is None else str(job.store.resolve()),
        "inputs": [str(p.resolve()) for p in job.grib_inputs],
        "statistics_store": None if job.statistics_store is None else str(job.statistics_store),
        "forecast": asdict(job.request),
        "outputs": asdict(job.outputs),
    }


def _input_store(job: ForecastJob, trained: TrainedModel) -> Store:
    if job.grib_inputs:
        cache = job.out / INPUT_CACHE
        fields = tuple(f.name for f in trained.config.fields)
        prepare(list(job.grib_inputs), cache, IngestOptions(fields=fields))
        return Store.open(cache)
    return _open(job.store or _training_store(trained), "input store")


def _statistics_store(job: ForecastJob, trained: TrainedModel) -> Store | None:
    local = [f.name for f in trained.config.fields if f.normalisation == "local"]
    if not local:
        return None
    return _open(job.statistics_store or _training_store(trained), "statistics store")


def _training_store(trained: TrainedModel) -> Path:
    return Path(next(iter(trained.normalisation.values()))["store"])


def _open(path: Path, role: str) -> Store:
    if not path.exists():
        raise StoreError(f"{path}: the {role} does not exist")
    return Store.open(path)
