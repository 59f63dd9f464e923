"""Every option of a product command checked before any work (`jobs/request_checks.py`), and
every path the user gives resolved before it reaches a library.

A refused request exits 2 with one `error:` line, and its output folder is never made: no
product, no log, no input cache. The CLI runs in this process through the console script's entry
point (`atmorep_cli.main.run`); the relative-path test runs it in subprocesses with a working
directory, as a user would.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from atmorep_cli.main import run
from atmorep_core.errors import ConfigError
from atmorep_core.jobs.product_job import ProductJob
from atmorep_core.jobs.request_checks import check_product, describe, physical_memory
from atmorep_core.model.multiformer import count_parameters
from atmorep_core.products.forecast import ForecastRequest
from tests.conftest import ENSEMBLE
from tests.helpers import run_cli, shared_file

INIT = "2017-01-02T00"  # the global store's last time a 12 h lead can follow (12-hourly steps)
Cli = Callable[..., tuple[int, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """`atmorep ARGS` in this process: its exit code and stderr."""

    def invoke(*args: str) -> tuple[int, str]:
        monkeypatch.setattr(sys, "argv", ["atmorep", *args])
        capsys.readouterr()
        try:
            run()
            code = 0
        except SystemExit as done:
            code = int(done.code or 0)
        return code, capsys.readouterr().err

    return invoke


def forecast(*extra: str, lead: str = "12h", init: str = INIT) -> tuple[str, ...]:
    return ("forecast", "--init", init, "--lead", lead, *extra)


def interpolate(*extra: str, start: str = "2017-01-01T00", end: str = "2017-01-02T12") -> tuple:
    return ("interpolate", "--start", start, "--end", end, *extra)


def counterfactual(*extra: str) -> tuple[str, ...]:
    return ("counterfactual", "--init", INIT, "--lead", "12h", "--shift-year", "30", *extra)


MEMORY = "this would need about"  # the start of the estimate in a refusal for memory
REFUSED = [
    (forecast("--plot", "nosuch"), "--plot nosuch: not a field of the product (temperature, "
     "geopotential)"),
    (forecast("--plot", "temperature", "--plot-lead", "6h"),
     "--plot-lead 6h: not a step of the product (12h)"),
    (forecast(lead="5h"), "--lead 5h / --every 12h: positive multiples of the store's time step"),
    (forecast(lead="0h"), "--lead 0h / --every 12h: positive multiples"),
    (forecast("--every", "24h"), "--every 24h: longer than the lead 12 h"),
    (forecast(lead="1200000000h"), f"--lead 1200000000h with --members 1: {MEMORY}"),
    (forecast("--members", "100000000"), f"--lead 12h with --members 100000000: {MEMORY}"),
    (forecast("--members", "0"), "--members 0: at least 1"),
    (forecast("--batch", "0"), "--batch 0: at least 1"),
    (forecast("--time-tokens", "-1"), "--time-tokens -1: at least 1"),
    (forecast("--time-tokens", "3"), "--time-tokens: 3 leaves no input time step of 3"),
    (forecast("--format", "tiff"), "--format tiff: choose from grib, netcdf"),
    (forecast("--area", "95/0/80/10"), "--area 95/0/80/10: need -90 <= S <= N <= 90"),
    (forecast(init="20170102T0030"), "--init '20170102T0030': the model steps in whole hours"),
    (forecast(init="2017-13-02"), "--init '2017-13-02': expected a UTC time such as"),
    (interpolate("--plot", "temperature", "--plot-time", "2017-01-01T06"),
     "--plot-time 2017-01-01T06: not a step of the product (2017-01-01T00, 2017-01-01T12, "
     "2017-01-02T00, 2017-01-02T12)"),
    (interpolate(end="2016-12-31T00"), "need start <= end"),
    (interpolate(start="1000-01-01", end="9000-01-01"),
     f"--start 1000-01-01T00 .. --end 9000-01-01T00 with --members 1: {MEMORY}"),
    (interpolate("--input-every", "0h"), "--input-every 0h: a positive number of hours"),
    (counterfactual("--members", "100000000"), f"--lead 12h with --members 100000000: {MEMORY}"),
    (counterfactual("--plot", "temperature", "--plot-lead", "6h"), "--plot-lead 6h: not a step"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "expected"), REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
def test_a_bad_option_is_refused_before_the_output_folder_exists(
    cli: Cli, tmp_path: Path, global_run: Path, args: tuple[str, ...], expected: str
) -> None:
    out = tmp_path / "out"
    code, stderr = cli(*args, "--checkpoint", str(global_run), "--out", str(out))
    assert code == 2, stderr
    assert stderr.startswith("error: ") and stderr.count("\n") == 1, stderr
    assert expected in stderr, stderr
    if MEMORY in expected:  # the estimate against what the machine has
        assert "TiB of memory" in stderr and "model calls, more than the" in stderr, stderr
    assert not out.exists()


def test_missing_stores_are_refused_before_the_output_folder_exists(
    cli: Cli, tmp_path: Path, global_run: Path
) -> None:
    out = tmp_path / "out"
    for option, role in (("--store", "input store"), ("--stats-store", "statistics store")):
        missing = tmp_path / "nosuch.zarr"
        code, stderr = cli(*forecast(option, str(missing)), "--checkpoint", str(global_run),
                           "--out", str(out))  # fmt: skip
        assert (code, stderr) == (4, f"error: {missing}: the {role} does not exist\n")
        assert not out.exists()


def test_a_checkpoint_that_cannot_downscale_is_refused_before_its_input_is_ingested(
    cli: Cli, tmp_path: Path, global_run: Path
) -> None:
    out = tmp_path / "out"
    code, stderr = cli(
        "downscale", "--start", "2017-01-01T00", "--end", "2017-01-02T12", "--checkpoint",
        str(global_run), "--input", str(shared_file(ENSEMBLE)), "--out", str(out),
    )  # fmt: skip
    assert code == 2 and "not trained with the downscaling strategy" in stderr, stderr
    assert not out.exists()  # no .inputs.zarr cache either


@pytest.mark.parametrize("command", ["correct", "bias-correct"])
@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ("temperature,u", "--fields: the checkpoint has no u (it has temperature, geopotential)"),
        ("nosuch", "--fields: unknown parameter 'nosuch'"),
    ],
)
def test_fields_the_checkpoint_lacks_are_refused_before_any_work(
    cli: Cli, tmp_path: Path, global_run: Path, command: str, fields: str, expected: str
) -> None:
    source = ("--ifs",) if command == "correct" else ()
    out = tmp_path / "out"
    code, stderr = cli(command, *source, str(shared_file(ENSEMBLE)), "--checkpoint",
                       str(global_run), "--fields", fields, "-o", str(out / "x.grib2"))  # fmt: skip
    assert code == 2 and stderr.startswith(f"error: {expected}") and stderr.count("\n") == 1
    assert not out.exists()


def test_a_mars_date_forecasts_from_midnight(cli: Cli, tmp_path: Path, global_run: Path) -> None:
    """`--init 20170102` is 2017-01-02T00 (the old parser made it 2017-01-02T02... or refused)."""
    code, stderr = cli(*forecast(init="20170102"), "--checkpoint", str(global_run), "--out",
                       str(tmp_path), "--format", "netcdf", "--json")  # fmt: skip
    assert code == 0, stderr
    assert (tmp_path / "forecast_20170102T0000.nc").exists()


def test_the_estimate_of_a_normal_run_grows_with_members_and_lead(global_run: Path) -> None:
    request = ForecastRequest(init=datetime(2017, 1, 2), lead_hours=12)
    job = ProductJob(checkpoint=global_run, out=global_run.parent / "unused")
    one = check_product(job, request)
    assert one.memory_bytes < physical_memory() / 100
    two = check_product(job, replace(request, members=2))
    assert two.product_bytes == 2 * one.product_bytes and two.engine_bytes == one.engine_bytes
    longer = check_product(job, replace(request, lead_hours=36))  # 3 iterations of 12 h
    assert longer.product_bytes == 3 * one.product_bytes
    assert longer.model_calls == 3 * one.model_calls
    config = describe(global_run).config
    assert one.engine_bytes > 4 * count_parameters(config)["total"]  # the float32 weights and more
    assert check_product(job, request, runs=3).product_bytes == 3 * one.product_bytes


def test_describe_reads_no_weights(global_run: Path) -> None:
    described = describe(global_run)
    assert described.config.names == ("temperature", "geopotential")
    assert described.step == 2 and described.folder.name == "step-00000002"
    assert all(p.is_meta for p in described.model.parameters())
    with pytest.raises(ConfigError, match="--plot-lead 24h: not a step of the product \\(12h\\)"):
        request = ForecastRequest(init=datetime(2017, 1, 2), lead_hours=12)
        job = ProductJob(checkpoint=global_run, out=global_run.parent / "unused")
        check_product(replace(job, outputs=replace(job.outputs, plot_steps=(24,))), request)


def test_relative_and_symlinked_paths_work_everywhere(tmp_path: Path, global_run: Path) -> None:
    """`..` in a store, run or output path reaches no library unresolved (tensorstore refuses
    it); the commands run from a working directory beside the data, as a user's would."""
    work, data = tmp_path / "work", tmp_path / "data"
    work.mkdir()
    run = os.path.relpath(global_run, work)
    assert run.startswith("..")

    def atmorep(*args: str) -> str:
        result = run_cli(*args, cwd=work)
        assert result.returncode == 0, result.stderr
        return result.stdout

    atmorep("prepare", str(shared_file(ENSEMBLE)), "--store", "../data/g.zarr", "--member",
            "mean", "--json")  # fmt: skip
    (tmp_path / "linked").symlink_to(data)
    linked = json.loads(atmorep("info", "../linked/g.zarr", "--json"))
    assert linked["path"] == str(data / "g.zarr")  # the symlink resolved, not only the `..`
    atmorep(*forecast("--checkpoint", run, "--store", "../data/g.zarr", "--out", "../out",
                      "--format", "netcdf"))  # fmt: skip
    product = tmp_path / "out" / "forecast_20170102T0000.nc"
    assert product.exists()
    scores = json.loads(atmorep("evaluate", "../out/*.nc", "--truth", "../data/g.zarr", "--json"))
    assert scores["products"] == [str(product)]
