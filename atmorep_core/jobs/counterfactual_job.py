"""`atmorep counterfactual` as one job: the factual and the counterfactual run, and their
difference, written as three products `STEM_factual`, `STEM_counterfactual` and
`STEM_difference` (maps of the difference only) with one manifest `STEM.json`.

Input, statistics and output folder are handled as for every product (`product_job`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from atmorep_core.engine.alpha import AlphaChange
from atmorep_core.engine.engine import Progress
from atmorep_core.engine.trained import TrainedModel
from atmorep_core.jobs.product_job import Manifest, Output, ProductJob, run_job
from atmorep_core.products.counterfactual import Question, change_label, counterfactual
from atmorep_core.products.forecast import ForecastRequest


@dataclass(frozen=True, kw_only=True)
class CounterfactualJob(ProductJob):
    question: Question  # a forecast, or a reconstruction (InterpolationRequest, reconstruct)
    change: AlphaChange


def run_counterfactual_job(job: CounterfactualJob, progress: Progress | None = None) -> Manifest:
    """Both runs and the difference written; the manifest (`"skipped": True` if up to date)."""
    task = "forecast" if isinstance(job.question, ForecastRequest) else "reconstruction"
    request = {task: asdict(job.question), "change": asdict(job.change)}
    stem = f"counterfactual_{_first_time(job.question):%Y%m%dT%H%M}_{change_label(job.change)}"

    def compute(trained: TrainedModel) -> list[Output]:
        store, statistics = job.input_store(trained), job.statistics(trained)
        question = job.question
        last = question.init if isinstance(question, ForecastRequest) else question.end
        unfamiliar = job.familiar(trained, [store], _first_time(question), last)
        runs = counterfactual(trained, store, statistics, question, job.change, progress)
        return [
            Output(runs.counterfactual, "_counterfactual", maps=False, unfamiliar=unfamiliar),
            Output(runs.factual, "_factual", maps=False),
            Output(runs.difference, "_difference"),
        ]

    return run_job(job, stem, request, compute)


def _first_time(question: Question) -> datetime:
    return question.init if isinstance(question, ForecastRequest) else question.start
