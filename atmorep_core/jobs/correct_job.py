"""`atmorep correct` as one job: guard the output, correct the IFS file, write its corrected copy.

The checkpoint's grid and time step come from its training store (`--store` names another with
the same grid); local statistics as for every product (`product_job`). With a truth store, the
summary scores the input and the correction against it (`correct_score`). The output is one GRIB
file beside its manifest (`OUT.json`), written under the output folder's lock and moved into
place with the manifest (`ProductRun.finish`), and a rerun with the same checkpoint, options and
input file contents (its SHA-256) does nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from atmorep_core.engine.engine import Progress
from atmorep_core.engine.trained import TrainedModel, load_trained
from atmorep_core.errors import InputDataError, StoreError
from atmorep_core.evaluation.correct_score import score_against
from atmorep_core.io.grib_messages import rewrite
from atmorep_core.io.run_folder import ProductRun
from atmorep_core.io.store import Store
from atmorep_core.jobs.product_job import ProductJob, run_product, sha256_of
from atmorep_core.products.correct import Correction, CorrectRequest, correct


@dataclass(frozen=True, kw_only=True)
class CorrectJob(ProductJob):
    """`out` is the folder of the corrected file `name`; `truth` a store to score against."""

    ifs: Path
    name: str
    request: CorrectRequest
    truth: Path | None = None


def run_correct_job(job: CorrectJob, progress: Progress | None = None) -> dict[str, Any]:
    """Correct and write; the manifest (with `"skipped": True` if it was up to date)."""
    if not job.ifs.is_file():
        raise InputDataError(f"--ifs {job.ifs}: no such file")
    trained = load_trained(job.checkpoint, job.device)
    stem, suffix = _split(job.name)
    run = ProductRun(job.out, stem, _request(job, trained))
    run.check_outputs(suffix)

    def make(run: ProductRun) -> tuple[list[Path], dict[str, Any]]:
        store, statistics = _grid_store(job, trained), job.statistics(trained)
        unfamiliar = job.familiar_file(trained, job.ifs, store)
        correction = correct(trained, store, statistics, job.ifs, job.request, progress)
        written = rewrite(job.ifs, run.staged(suffix), correction.values)
        summary = {**_summary(job, correction, written), "unfamiliar": list(unfamiliar)}
        if job.truth is not None:
            truth = Store.open(_existing(job.truth, "truth store"))
            summary["score"] = score_against(truth, job.ifs, correction)
        return [run.staged(suffix)], summary

    return run_product(run, job.force, make)


def _split(name: str) -> tuple[str, str]:
    path = Path(name)
    return path.stem, path.suffix


def _request(job: CorrectJob, trained: TrainedModel) -> dict[str, Any]:
    return {
        **job.shared_request(trained),
        "ifs": str(job.ifs.resolve()),
        "ifs_sha256": sha256_of(job.ifs),
        "correct": asdict(job.request),
        "truth": None if job.truth is None else str(job.truth.resolve()),
    }


def _grid_store(job: CorrectJob, trained: TrainedModel) -> Store:
    # The input store of other products is where the model's grid and time step are recorded.
    return job.input_store(trained)


def _summary(job: CorrectJob, correction: Correction, written: int) -> dict[str, Any]:
    return {
        "input": str(job.ifs),
        "mode": job.request.mode,
        "messages": written,
        "corrected_messages": len(correction.values),
        "passed_through": written - len(correction.values),
        "fields": {name: list(levels) for name, levels in correction.levels.items()},
        "valid_times": [t.isoformat() for t in correction.corrected_times],
        "uncorrected_times": [t.isoformat() for t in correction.uncorrected_times],
        "model_grid": asdict(correction.domain),
        "rms_change": {k: round(v, 6) for k, v in correction.rms_change.items()},
    }


def _existing(path: Path, role: str) -> Path:
    if not path.exists():
        raise StoreError(f"{path}: the {role} does not exist")
    return path
