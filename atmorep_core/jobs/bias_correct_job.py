"""`atmorep bias-correct` as one job: a model trained against observations corrects new model
output, written on the input's grid with its ensemble spread beside it.

The question is `correct`'s denoise mode (every step shown, every step answered, the change
regridded back onto the input's points), asked of a checkpoint trained on pairs (`data.target`);
accumulated fields never come out negative. With an observation store the summary scores the raw
input, the model and the two statistical baselines against it (`bias_score`). Output, lock,
manifest and idempotent reruns as for `correct`: the corrected file and its spread are moved
into place together with the manifest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from atmorep_core.engine.engine import Progress
from atmorep_core.engine.trained import load_trained
from atmorep_core.errors import InputDataError, StoreError
from atmorep_core.evaluation.bias_score import paired_stores, score_bias
from atmorep_core.io.grib_messages import rewrite
from atmorep_core.io.run_folder import ProductRun
from atmorep_core.io.store import Store
from atmorep_core.jobs.product_job import ProductJob, run_product, sha256_of
from atmorep_core.products.correct import CorrectRequest, correct

SPREAD = ".spread"  # the ensemble standard deviation's file: NAME.spread.grib2


@dataclass(frozen=True, kw_only=True)
class BiasCorrectJob(ProductJob):
    """`out` is the folder of the corrected file `name`; `obs` a store to score against."""

    source: Path
    name: str
    fields: tuple[str, ...] = ()
    batch_size: int = 16
    obs: Path | None = None


def run_bias_correct_job(job: BiasCorrectJob, progress: Progress | None = None) -> dict[str, Any]:
    """Correct and write the mean and the spread; the manifest (`"skipped"` if up to date)."""
    if not job.source.is_file():
        raise InputDataError(f"{job.source}: no such file")
    trained = load_trained(job.checkpoint, job.device)
    store, target = paired_stores(trained)
    path = Path(job.name)
    request = CorrectRequest(
        fields=job.fields, batch_size=job.batch_size, ensemble=True,
        allow_implausible=job.allow_implausible,
    )  # fmt: skip
    run = ProductRun(job.out, path.stem, {
        **job.shared_request(trained), "input": str(job.source.resolve()),
        "input_sha256": sha256_of(job.source), "fields": list(job.fields),
        "obs": None if job.obs is None else str(job.obs.resolve()),
    })  # fmt: skip
    run.check_outputs(path.suffix, SPREAD + path.suffix)

    def make(run: ProductRun) -> tuple[list[Path], dict[str, Any]]:
        statistics, grid = job.statistics(trained), job.input_store(trained)
        unfamiliar = job.familiar_file(trained, job.source, grid)
        correction = correct(trained, grid, statistics, job.source, request, progress)
        members = correction.members or {}
        spread = {i: np.std(m, axis=0, ddof=1) for i, m in members.items()}
        mean_path, spread_path = run.staged(path.suffix), run.staged(SPREAD + path.suffix)
        written = rewrite(job.source, mean_path, correction.values)
        rewrite(job.source, spread_path, spread)
        summary = {
            "input": str(job.source),
            "messages": written,
            "corrected_messages": len(correction.values),
            "fields": {name: list(levels) for name, levels in correction.levels.items()},
            "valid_times": [t.isoformat() for t in correction.corrected_times],
            "members": len(next(iter(members.values()))) if members else 0,
            "trained_on": {"input": str(store), "target": str(target)},
            "model_grid": asdict(correction.domain),
            "rms_change": {k: round(v, 6) for k, v in correction.rms_change.items()},
            "unfamiliar": list(unfamiliar),
        }
        if job.obs is not None:
            if not job.obs.exists():
                raise StoreError(f"--obs {job.obs}: no such store")
            summary["score"] = score_bias(trained, Store.open(job.obs), job.source, correction)
        return [mean_path, spread_path], summary

    return run_product(run, job.force, make)
