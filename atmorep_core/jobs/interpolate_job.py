"""`atmorep interpolate` as one job: find the input, guard the output folder, fill, write.

Input, statistics and output folder are handled as for every product (`product_job`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from atmorep_core.engine.engine import Progress
from atmorep_core.engine.trained import TrainedModel
from atmorep_core.jobs.product_job import Manifest, Output, ProductJob, run_job
from atmorep_core.products.interpolate import InterpolationRequest, interpolate


@dataclass(frozen=True, kw_only=True)
class InterpolationJob(ProductJob):
    request: InterpolationRequest


def run_interpolation_job(job: InterpolationJob, progress: Progress | None = None) -> Manifest:
    """Interpolate and write the products; the manifest (`"skipped": True` if up to date)."""

    def compute(trained: TrainedModel) -> list[Output]:
        inputs, statistics = job.input_series(trained), job.statistics(trained)
        unfamiliar = job.familiar(trained, inputs.stores, job.request.start, job.request.end)
        product = interpolate(trained, inputs, statistics, job.request, progress)
        return [Output(product, unfamiliar=unfamiliar)]

    start, end = job.request.start, job.request.end
    stem = f"interpolation_{start:%Y%m%dT%H%M}_{end:%Y%m%dT%H%M}"
    return run_job(job, stem, {"interpolation": asdict(job.request)}, compute)
