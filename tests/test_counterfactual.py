"""`atmorep counterfactual` on the real ERA5 2 m temperature sample with the briefly trained
forecast model: an unchanged alpha gives back the factual run bit for bit, a changed year
changes the answer, and the difference is member by member the change's effect."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import xarray as xr

from atmorep_core.engine.alpha import AlphaChange
from atmorep_core.engine.trained import load_trained
from atmorep_core.io.store import Store
from atmorep_core.products.counterfactual import counterfactual
from atmorep_core.products.forecast import ForecastRequest, forecast
from atmorep_core.products.interpolate import InterpolationRequest
from tests.helpers import run_cli

INIT = datetime(2019, 3, 22, 12)
STEM = "counterfactual_20190322T1200_year+35"


def test_an_unchanged_alpha_reproduces_the_factual_run_bit_for_bit(
    t2m_store: Path, t2m_run: Path
) -> None:
    trained, store = load_trained(t2m_run), Store.open(t2m_store)
    request = ForecastRequest(INIT, lead_hours=6, members=3, seed=2)
    plain = forecast(trained, store, store, request).fields[0].values
    for same in (AlphaChange(), AlphaChange(set={"year": 2019.0}, shift={"hour": 0.0})):
        runs = counterfactual(trained, store, store, request, same)
        assert np.array_equal(runs.factual.fields[0].values, plain)
        assert np.array_equal(runs.counterfactual.fields[0].values, plain)
        assert not np.any(runs.difference.fields[0].values)
    assert runs.factual.kind == "forecast" and runs.counterfactual.kind == "counterfactual"


def test_a_changed_year_changes_forecast_and_reconstruction_member_by_member(
    t2m_store: Path, t2m_run: Path
) -> None:
    trained, store = load_trained(t2m_run), Store.open(t2m_store)
    forty = AlphaChange(shift={"year": 35.0})
    request = ForecastRequest(INIT, lead_hours=6, members=3, seed=2)
    reconstruction = InterpolationRequest(INIT, datetime(2019, 3, 22, 23), reconstruct=True)
    for question in (request, reconstruction):
        runs = counterfactual(trained, store, store, question, forty)
        factual, changed = runs.factual.fields[0].values, runs.counterfactual.fields[0].values
        difference = runs.difference.fields[0].values
        assert np.array_equal(difference, changed - factual)
        assert np.all(np.isfinite(difference)) and np.abs(difference).mean() > 1e-3
        assert runs.difference.attributes["alpha_change"] == "year+35"
    assert runs.factual.steps_hours == tuple(range(12))  # a reconstruction: every step
    same_heads = forecast(trained, store, store, request).fields[0].values
    runs = counterfactual(trained, store, store, request, forty)
    assert np.array_equal(runs.factual.fields[0].values, same_heads)


def test_the_cli_writes_counterfactual_factual_difference_and_a_map(
    tmp_path: Path, t2m_run: Path
) -> None:
    result = run_cli(
        "counterfactual", "--checkpoint", str(t2m_run), "--init", "2019-03-22T12", "--lead",
        "3h", "--shift-year", "35", "--members", "2", "--plot", "t2m", "--format", "netcdf",
        "--out", str(tmp_path), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    manifest = json.loads(result.stdout)
    roles = ("counterfactual", "factual", "difference")
    assert manifest["products"] == [f"{STEM}_{role}" for role in roles]
    assert sorted(manifest["outputs"]) == sorted(
        [f"{STEM}_{role}.nc" for role in roles] + [f"maps/{STEM}_difference/t2m_surface0_003h.png"]
    )
    values = {}
    for role in roles:
        with xr.open_dataset(tmp_path / f"{STEM}_{role}.nc") as nc:
            assert nc.attrs["counterfactual_role"] == role
            values[role] = nc["t2m"].transpose("realization", "time", ...).values
    assert values["counterfactual"].shape == (2, 3, 33, 49)
    assert np.array_equal(values["difference"], values["counterfactual"] - values["factual"])


def test_an_unknown_alpha_entry_exits_2_naming_it(tmp_path: Path, t2m_run: Path) -> None:
    result = run_cli(
        "counterfactual", "--checkpoint", str(t2m_run), "--init", "2019-03-22T12", "--set",
        "yr=2050", "--out", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 2 and "no entry 'yr'" in result.stderr, result.stderr
    assert not list(tmp_path.glob("counterfactual_*"))
