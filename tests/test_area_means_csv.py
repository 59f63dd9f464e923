"""`--format csv`: the area means of a product per lead and member, committed with the others."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

import numpy as np
import xarray as xr

from atmorep_core.io.area_means_csv import write_area_means_csv
from atmorep_core.io.product import Product, ProductField
from atmorep_core.rotated_grid import RotatedGrid
from tests.helpers import run_cli

INIT = "2017-01-02T00"  # the global store's last input time that a 12 h lead can follow
STEM = "forecast_20170102T0000"
COLUMNS = [
    "temperature_isobaricInhPa500", "temperature_isobaricInhPa850",
    "geopotential_isobaricInhPa500", "geopotential_isobaricInhPa850",
]  # fmt: skip


def cos_latitude_mean(values: np.ndarray, lats: np.ndarray) -> np.ndarray:
    """(..., lat, lon) -> (...): every point weighted by the cosine of its latitude."""
    weights = np.broadcast_to(np.cos(np.radians(lats))[:, None], values.shape[-2:])
    return np.average(values.astype(np.float64), axis=(-2, -1), weights=weights)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def test_a_forecast_writes_the_cos_latitude_weighted_means_of_its_netcdf_values(
    tmp_path: Path, global_run: Path
) -> None:
    result = run_cli(
        "forecast", "--checkpoint", str(global_run), "--init", INIT, "--lead", "12h",
        "--members", "2", "--format", "netcdf,csv", "--out", str(tmp_path), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    manifest = json.loads(result.stdout)
    assert sorted(manifest["outputs"]) == [f"{STEM}.csv", f"{STEM}.nc"]
    recorded = json.loads((tmp_path / f"{STEM}.json").read_text())["outputs"]
    assert sorted(recorded) == [f"{STEM}.csv", f"{STEM}.nc"]  # committed with its checksum
    rows = read_csv(tmp_path / f"{STEM}.csv")
    assert list(rows[0]) == ["valid_time", "step_hours", "member", *COLUMNS]
    leads = [(r["valid_time"], r["step_hours"], r["member"]) for r in rows]
    assert leads == [("2017-01-02T12:00:00", "12", "1"), ("2017-01-02T12:00:00", "12", "2")]
    with xr.open_dataset(tmp_path / f"{STEM}.nc") as products:
        for name in ("temperature", "geopotential"):
            values = products[name].transpose("realization", "time", ...)  # (M, step, L, ..)
            expected = cos_latitude_mean(values.values, values["latitude"].values)
            for i, level in enumerate(values["pressure"].values):
                column = [float(r[f"{name}_isobaricInhPa{level}"]) for r in rows]
                np.testing.assert_allclose(column, expected[:, 0, i], rtol=1e-12)
    temperature = [float(r["temperature_isobaricInhPa850"]) for r in rows]
    assert all(240 < t < 290 for t in temperature)  # a global mean at 850 hPa, in kelvin


def test_a_rotated_grid_is_weighted_by_its_rotated_latitude(tmp_path: Path) -> None:
    """A regular grid in the rotated frame: its cells' areas follow the rotated latitude."""
    grid = RotatedGrid.regular((-40.0, 10.0), (-20.0, -5.0), (10.0, 5.0), (7, 3))  # rlat -20..40
    rows = np.broadcast_to(grid.rlats[:, None], grid.shape)  # each point holds its row's rlat
    values = np.stack([rows, 2 * rows])[:, None, None]  # (member, step, level, rlat, rlon)
    field = ProductField("t2m", "surface", (0,), grid, values)
    write_area_means_csv(Product(datetime(2020, 1, 1), (3,), (field,)), tmp_path / "p.csv")
    table = read_csv(tmp_path / "p.csv")
    expected = cos_latitude_mean(field.values[:, 0, 0], grid.rlats)  # (member,)
    assert 8.5 < expected[0] < 9.0  # the plain mean is 10: the rows far north weigh less
    assert [r["member"] for r in table] == ["1", "2"]
    np.testing.assert_allclose([float(r["t2m_surface0"]) for r in table], expected, rtol=1e-12)
