"""The table of product kinds: each request names its files and its manifest entry as the
product commands always did, and jobs are built by keyword only."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from atmorep_core.engine.alpha import AlphaChange
from atmorep_core.jobs.product_job import ProductJob
from atmorep_core.jobs.product_kinds import (
    CounterfactualRequest,
    counterfactual_request,
    kind_of,
)
from atmorep_core.products.downscale import DownscaleRequest, trained_strategy
from atmorep_core.products.forecast import ForecastRequest
from atmorep_core.products.interpolate import InterpolationRequest

INIT = datetime(2017, 1, 2, 6)
END = datetime(2017, 1, 3, 18)


def _counterfactual(reconstruct: bool) -> CounterfactualRequest:
    return counterfactual_request(
        init=INIT, hours=36, reconstruct=reconstruct, members=2, seed=7, area=None,
        batch_size=4, shift_alpha={"year": 5.0, "hour": 6.0}, set_alpha={"day_of_year": 200.0},
        shift_year=30.0,
    )  # fmt: skip


def test_each_kind_names_its_files_and_its_manifest_entry() -> None:
    forecast = ForecastRequest(init=INIT, lead_hours=12)
    interpolation = InterpolationRequest(start=INIT, end=END)
    downscaling = DownscaleRequest(start=INIT, end=END, target="cosmo-rea6")
    cases = [
        (forecast, "forecast", "forecast_20170102T0600"),
        (interpolation, "interpolation", "interpolation_20170102T0600_20170103T1800"),
        (downscaling, "downscaling", "downscaling_20170102T0600_20170103T1800"),
    ]
    for request, name, stem in cases:
        kind = kind_of(request)
        assert (kind.name, kind.stem(request), kind.held) == (name, stem, 1)
        assert list(kind.request(request)) == [name]
    assert kind_of(forecast).request(forecast)["forecast"]["lead_hours"] == 12
    assert kind_of(downscaling).request(downscaling)["downscaling"]["target"] == "cosmo-rea6"
    assert kind_of(downscaling).check is trained_strategy  # a checkpoint that cannot downscale
    assert kind_of(forecast).check is None


def test_a_counterfactual_holds_three_products_and_names_its_change() -> None:
    changed = _counterfactual(reconstruct=False)
    kind = kind_of(changed)
    assert changed.change == AlphaChange(
        set={"day_of_year": 200.0}, shift={"year": 35.0, "hour": 6.0}
    )  # --shift-year adds to --shift year=
    assert kind.stem(changed) == "counterfactual_20170102T0600_day_of_year200_year+35_hour+6"
    assert kind.held == 3
    described = kind.request(changed)
    assert list(described) == ["forecast", "change"]
    assert described["forecast"]["lead_hours"] == 36 and described["forecast"]["seed"] == 7
    reconstruction = kind.request(_counterfactual(reconstruct=True))
    assert list(reconstruction) == ["reconstruction", "change"]
    assert reconstruction["reconstruction"]["end"] == datetime(2017, 1, 3, 18)
    assert reconstruction["reconstruction"]["reconstruct"] is True


def test_jobs_are_built_by_keyword_only() -> None:
    with pytest.raises(TypeError):
        ProductJob(Path("run"), Path("out"))  # type: ignore[misc]
    job = ProductJob(checkpoint=Path("run"), out=Path("out"), force=True)
    assert (job.checkpoint, job.out, job.force, job.store) == (Path("run"), Path("out"), True, None)
