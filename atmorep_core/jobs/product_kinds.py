"""The product commands that write a folder of products (forecast, interpolate, downscale,
counterfactual) as one template and a table of their kinds.

A kind says what its request is called in the manifest, how its files are named, and how its
products are computed from the job's input; `run_product_job` does the rest for every kind
(`product_job.run_job`: load and check the model, guard the folder, write, manifest).
`correct` and `bias-correct` rewrite their input file instead (`correct_job`, `bias_correct_job`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from atmorep_core.engine.alpha import AlphaChange
from atmorep_core.engine.engine import Progress
from atmorep_core.engine.trained import TrainedModel
from atmorep_core.jobs.product_job import Check, Manifest, Output, ProductJob, run_job
from atmorep_core.jobs.request_checks import Estimate, check_product
from atmorep_core.products.counterfactual import Question, change_label, counterfactual
from atmorep_core.products.downscale import DownscaleRequest, downscale, trained_strategy
from atmorep_core.products.forecast import ForecastRequest, forecast
from atmorep_core.products.interpolate import InterpolationRequest, interpolate

R = TypeVar("R")


@dataclass(frozen=True)
class CounterfactualRequest:
    """A forecast or a reconstruction, asked again with alpha changed."""

    question: Question
    change: AlphaChange


@dataclass(frozen=True)
class ProductKind(Generic[R]):
    """One kind of product: its name (the progress bar's title and the manifest's key of its
    request), its files' stem, and its products from the job's input and model."""

    name: str
    stem: Callable[[R], str]
    compute: Callable[[ProductJob, TrainedModel, R, Progress | None], list[Output]]
    check: Check | None = None  # refuses a checkpoint that cannot answer the question
    held: int = 1  # products a run holds at once (request_checks' memory estimate)
    # What the products depend on besides the job's shared settings; default: {name: request}.
    describe: Callable[[R], dict[str, Any]] | None = None

    def request(self, request: R) -> dict[str, Any]:
        if self.describe is not None:
            return self.describe(request)
        return {self.name: asdict(request)}  # type: ignore[call-overload]


def counterfactual_request(
    *,
    init: datetime,
    hours: int,
    reconstruct: bool,
    members: int,
    seed: int,
    area: tuple[float, float, float, float] | None,
    batch_size: int,
    shift_alpha: dict[str, float],
    set_alpha: dict[str, float],
    shift_year: float | None = None,
) -> CounterfactualRequest:
    """The forecast from `init`, or with `reconstruct` the reconstruction of INIT .. INIT+hours,
    asked with alpha's entries shifted and set (`shift_year` adds to the year's shift)."""
    if shift_year is not None:
        shift_alpha = {**shift_alpha, "year": shift_alpha.get("year", 0.0) + shift_year}
    change = AlphaChange(set=set_alpha, shift=shift_alpha)
    question: Question
    if reconstruct:
        question = InterpolationRequest(
            start=init, end=init + timedelta(hours=hours), members=members, seed=seed,
            area=area, batch_size=batch_size, reconstruct=True,
        )  # fmt: skip
    else:
        question = ForecastRequest(
            init=init, lead_hours=hours, members=members, seed=seed, area=area,
            batch_size=batch_size,
        )  # fmt: skip
    return CounterfactualRequest(question, change)


def _span(start: datetime, end: datetime) -> str:
    return f"{start:%Y%m%dT%H%M}_{end:%Y%m%dT%H%M}"


def _forecast(
    job: ProductJob, trained: TrainedModel, request: ForecastRequest, progress: Progress | None
) -> list[Output]:
    store, statistics = job.input_store(trained), job.statistics(trained)
    unfamiliar = job.familiar(trained, [store], request.init, request.init)
    product = forecast(trained, store, statistics, request, progress)
    return [Output(product, unfamiliar=unfamiliar)]


def _interpolation(
    job: ProductJob, trained: TrainedModel, request: InterpolationRequest, progress: Progress | None
) -> list[Output]:
    inputs, statistics = job.input_series(trained), job.statistics(trained)
    unfamiliar = job.familiar(trained, inputs.stores, request.start, request.end)
    product = interpolate(trained, inputs, statistics, request, progress)
    return [Output(product, unfamiliar=unfamiliar)]


def _downscaling(
    job: ProductJob, trained: TrainedModel, request: DownscaleRequest, progress: Progress | None
) -> list[Output]:
    inputs, statistics = job.input_store(trained), job.statistics(trained)
    # Only the input's part on the model's grid is used, and coarser than the model's.
    unfamiliar = job.familiar(trained, [inputs], request.start, request.end, whole=False)
    product = downscale(trained, inputs, statistics, request, progress)
    return [Output(product, unfamiliar=unfamiliar)]


def _counterfactual(
    job: ProductJob,
    trained: TrainedModel,
    request: CounterfactualRequest,
    progress: Progress | None,
) -> list[Output]:
    """Three products `STEM_counterfactual`, `STEM_factual` and `STEM_difference` (maps of the
    difference only) with one manifest `STEM.json`."""
    store, statistics = job.input_store(trained), job.statistics(trained)
    question = request.question
    last = question.init if isinstance(question, ForecastRequest) else question.end
    unfamiliar = job.familiar(trained, [store], _first_time(question), last)
    runs = counterfactual(trained, store, statistics, question, request.change, progress)
    return [
        Output(runs.counterfactual, "_counterfactual", maps=False, unfamiliar=unfamiliar),
        Output(runs.factual, "_factual", maps=False),
        Output(runs.difference, "_difference"),
    ]


def _counterfactual_stem(request: CounterfactualRequest) -> str:
    first, label = _first_time(request.question), change_label(request.change)
    return f"counterfactual_{first:%Y%m%dT%H%M}_{label}"


def _counterfactual_request(request: CounterfactualRequest) -> dict[str, Any]:
    task = "forecast" if isinstance(request.question, ForecastRequest) else "reconstruction"
    return {task: asdict(request.question), "change": asdict(request.change)}


def _first_time(question: Question) -> datetime:
    return question.init if isinstance(question, ForecastRequest) else question.start


KINDS: dict[type, ProductKind[Any]] = {
    ForecastRequest: ProductKind[ForecastRequest](
        name="forecast", stem=lambda r: f"forecast_{r.init:%Y%m%dT%H%M}", compute=_forecast
    ),
    InterpolationRequest: ProductKind[InterpolationRequest](
        name="interpolation",
        stem=lambda r: "interpolation_" + _span(r.start, r.end),
        compute=_interpolation,
    ),
    DownscaleRequest: ProductKind[DownscaleRequest](
        name="downscaling",
        stem=lambda r: "downscaling_" + _span(r.start, r.end),
        compute=_downscaling,
        check=trained_strategy,
    ),
    CounterfactualRequest: ProductKind[CounterfactualRequest](
        name="counterfactual",
        stem=_counterfactual_stem,
        compute=_counterfactual,
        held=3,  # the factual and the changed run and their difference
        describe=_counterfactual_request,
    ),
}

ProductRequest = ForecastRequest | InterpolationRequest | DownscaleRequest | CounterfactualRequest


def kind_of(request: ProductRequest) -> ProductKind[Any]:
    return KINDS[type(request)]


def check_request(job: ProductJob, request: ProductRequest) -> Estimate:
    """`request_checks.check_product` for any kind: before any work, ConfigError for a request
    that cannot run or would not fit in memory."""
    question = request.question if isinstance(request, CounterfactualRequest) else request
    return check_product(job, question, runs=kind_of(request).held)


def run_product_job(
    job: ProductJob, request: ProductRequest, progress: Progress | None = None
) -> Manifest:
    """Compute and write the products of `request`; the manifest (with `"skipped": True` if
    the folder already held them)."""
    kind = kind_of(request)

    def compute(trained: TrainedModel) -> list[Output]:
        return kind.compute(job, trained, request, progress)

    return run_job(job, kind.stem(request), kind.request(request), compute, kind.check)
