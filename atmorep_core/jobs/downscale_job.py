"""`atmorep downscale` as one job: find the coarse input, guard the output folder, downscale, write.

Input and output folder are handled as for every product (`product_job`); GRIB input is
prepared on its own (coarse) grid into the folder's input cache, once the checkpoint is known to
answer the downscaling question.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from atmorep_core.engine.engine import Progress
from atmorep_core.engine.trained import TrainedModel
from atmorep_core.jobs.product_job import Manifest, Output, ProductJob, run_job
from atmorep_core.products.downscale import DownscaleRequest, downscale, trained_strategy


@dataclass(frozen=True, kw_only=True)
class DownscaleJob(ProductJob):
    request: DownscaleRequest


def run_downscale_job(job: DownscaleJob, progress: Progress | None = None) -> Manifest:
    """Downscale and write the products; the manifest (`"skipped": True` if up to date)."""

    def compute(trained: TrainedModel) -> list[Output]:
        inputs, statistics = job.input_store(trained), job.statistics(trained)
        # Only the input's part on the model's grid is used, and coarser than the model's.
        start, end = job.request.start, job.request.end
        unfamiliar = job.familiar(trained, [inputs], start, end, whole=False)
        product = downscale(trained, inputs, statistics, job.request, progress)
        return [Output(product, unfamiliar=unfamiliar)]

    start, end = job.request.start, job.request.end
    stem = f"downscaling_{start:%Y%m%dT%H%M}_{end:%Y%m%dT%H%M}"
    return run_job(job, stem, {"downscaling": asdict(job.request)}, compute, trained_strategy)
