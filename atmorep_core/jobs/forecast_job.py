"""`atmorep forecast` as one job: find the input, guard the output folder, forecast, write.

Input, statistics and output folder are handled as for every product (`product_job`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from atmorep_core.engine.engine import Progress
from atmorep_core.engine.trained import TrainedModel
from atmorep_core.jobs.product_job import Manifest, Output, ProductJob, run_job
from atmorep_core.products.forecast import ForecastRequest, forecast


@dataclass(frozen=True, kw_only=True)
class ForecastJob(ProductJob):
    request: ForecastRequest


def run_forecast_job(job: ForecastJob, progress: Progress | None = None) -> Manifest:
    """Forecast and write the products; the manifest (with `"skipped": True` if up to date)."""

    def compute(trained: TrainedModel) -> list[Output]:
        store, statistics = job.input_store(trained), job.statistics(trained)
        init = job.request.init
        unfamiliar = job.familiar(trained, [store], init, init)
        product = forecast(trained, store, statistics, job.request, progress)
        return [Output(product, unfamiliar=unfamiliar)]

    stem = f"forecast_{job.request.init:%Y%m%dT%H%M}"
    return run_job(job, stem, {"forecast": asdict(job.request)}, compute)
