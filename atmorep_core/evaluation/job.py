"""`atmorep evaluate` as one job: find the products, score them, write the report.

With an output folder the job holds the folder's lock (a second run there stops at once), writes
the CSV and the figures into its staging folder and moves them into place together with
`scores.json`, the run's manifest (the request, the outputs with checksums, and the scores;
`ProductRun.finish`); GRIB truth is prepared into a cache store in the folder, so a rerun
decodes nothing twice. Without one, the cache is a temporary folder.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from atmorep_core.evaluation.evaluate import EvaluateOptions, evaluate, expand_products
from atmorep_core.evaluation.report import as_dict, write_csv
from atmorep_core.io.run_folder import ProductRun

TRUTH_CACHE = ".truth.zarr"
STEM = "scores"


@dataclass(frozen=True)
class EvaluateJob:
    """What the user asked for (the CLI's options)."""

    products: tuple[str, ...]  # product files or globs
    truth: tuple[Path, ...]  # one store, or GRIB files
    out: Path | None = None  # JSON, CSV and figures; None: nothing written
    climatology: tuple[datetime, datetime] | None = None
    map_leads: tuple[int, ...] | None = None


def run_evaluation_job(job: EvaluateJob) -> dict[str, Any]:
    """The evaluation as JSON values (with the manifest's keys when written to a folder)."""
    products = expand_products(job.products)
    if job.out is None:
        with tempfile.TemporaryDirectory(prefix="atmorep-truth-") as scratch:
            return as_dict(evaluate(_options(job, products, Path(scratch) / TRUTH_CACHE)))
    from atmorep_core.evaluation.plots import plot_evaluation  # matplotlib is slow to import

    run = ProductRun(job.out, STEM, _request(job, products))
    with run.locked():
        evaluation = evaluate(_options(job, products, job.out / TRUTH_CACHE))
        written = [write_csv(evaluation.rows, run.staged(".csv"))]
        written += plot_evaluation(evaluation, run.staging / "plots")
        return run.finish(written, as_dict(evaluation))


def _options(job: EvaluateJob, products: tuple[Path, ...], cache: Path) -> EvaluateOptions:
    return EvaluateOptions(products, job.truth, cache, job.climatology, job.map_leads)


def _request(job: EvaluateJob, products: tuple[Path, ...]) -> dict[str, Any]:
    return {
        "products": [str(p.resolve()) for p in products],
        "truth": [str(p.resolve()) for p in job.truth],
        "climatology": None if job.climatology is None else [str(t) for t in job.climatology],
        "map_leads": job.map_leads,
    }
