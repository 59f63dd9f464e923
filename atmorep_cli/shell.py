"""The shell around every product command: its checks before any work, the run log, the
progress bar, and the report of the run's manifest (JSON or a few lines)."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from atmorep_cli.console import err, out
from atmorep_cli.progress import progress_bar
from atmorep_cli.reports import Manifest, report_folder
from atmorep_cli.runlog import Log, run_log

if TYPE_CHECKING:
    from atmorep_core.jobs.product_job import ProductJob
    from atmorep_core.jobs.product_kinds import ProductRequest

Progress = Callable[[str, float], None]
Report = Callable[[Manifest], None]


def run_folder_product(
    job: ProductJob, request: ProductRequest, log: Path | None, as_json: bool
) -> None:
    """A folder of products (forecast, interpolation, downscaling, counterfactual): the request
    checked before any work (ConfigError), then run as `run_product_command`."""
    from atmorep_core.jobs.product_kinds import check_request, kind_of, run_product_job

    check_request(job, request)
    what = kind_of(request).name
    run = partial(run_product_job, job, request)
    run_product_command(what, job.out, log, as_json, run, partial(report_folder, what, job.out))


def run_product_command(
    what: str,
    out_dir: Path,
    log: Path | None,
    as_json: bool,
    job: Callable[[Progress], Manifest],
    report: Report,
) -> None:
    """Run `job` with the log (default: OUT_DIR/atmorep.log) and a progress bar, then print its
    manifest (--json) or `report` it."""
    with run_log(log or out_dir / "atmorep.log") as write_log:
        with progress_bar(what, quiet=as_json) as progress:
            manifest = job(progress)
        warn_unfamiliar(manifest, write_log)
        write_log(("up to date " if manifest["skipped"] else "done ") + json.dumps(manifest))
    if as_json:
        out.print_json(json.dumps(manifest))
    else:
        report(manifest)


def warn_unfamiliar(manifest: Manifest, write_log: Log) -> None:
    """Log each finding on input outside the checkpoint's experience that the run processed
    (--allow-unfamiliar), and warn on stderr in one line."""
    findings = manifest.get("unfamiliar") or []
    for finding in findings:
        write_log(f"warning: outside the checkpoint's experience: {finding}")
    if findings:
        err.print(
            "[yellow]warning:[/] processed input outside the checkpoint's experience "
            f"(--allow-unfamiliar): {'; '.join(findings)}",
            highlight=False,
            soft_wrap=True,
        )
