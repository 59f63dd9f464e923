"""Input outside the checkpoint's experience (region, months, values) is refused in one line, or
processed with a warning in the log and the manifest under --allow-unfamiliar."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from atmorep_core.data.ingest_plan import IngestOptions
from atmorep_core.data.prepare import prepare
from atmorep_core.engine.trained import load_trained
from atmorep_core.errors import InputDataError
from atmorep_core.io.grib_messages import read_points, read_values
from atmorep_core.io.grib_scan import scan_headers
from atmorep_core.io.store import Store
from atmorep_core.products.experience import (
    FieldValues,
    InputValues,
    Reference,
    check_grib,
    store_values,
)
from atmorep_core.sample.simulate import SampleSettings, generate_sample
from benchmarks.grib_edits import write_changed_copy
from tests.conftest import train_briefly
from tests.helpers import atmorep_in_process, run_cli, shared_file

ML137 = "ifs/ifs-fc-ml137-t-u-v-q-20181114T12-step24.grib2"  # Europe, 2018-11-15T12
COSMO_T2M = "regional/cosmo-d2-t2m-rotated-20180808T18-step6.grib2"  # Germany, 2018-08-09T00
# A simulated planet in January 2020, as the demo's but small: 5 degrees, six hours.
PLANET = SampleSettings(
    start=datetime(2020, 1, 20, 0), days=6 / 24, spinup_days=0.5, resolution_deg=5.0,
    truncation=21, layers=8, seed=3,
)  # fmt: skip
PLANET_MODEL = {
    "fields": [
        {
            "name": "temperature", "levels": [96, 137], "token_count": [2, 2, 2],
            "token_size": [1, 3, 3], "embed_dim": 16, "num_heads": 2, "encoder_layers": 1,
            "decoder_layers": 1, "tail_heads": 2, "normalisation": "local",
        }
    ]
}  # fmt: skip
PLANET_GRIB = "era5_temperature_y2020_m01.grib"


@pytest.fixture(scope="module")
def planet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The planet's GRIB folder and a checkpoint trained briefly on its temperature."""
    folder = tmp_path_factory.mktemp("planet")
    generate_sample(folder / "grib", PLANET)
    store = folder / "planet.zarr"
    prepare([folder / "grib" / PLANET_GRIB], store, IngestOptions(fields=("temperature",)))
    return folder / "grib", train_briefly(folder, store, PLANET_MODEL)


atmorep = atmorep_in_process


def test_an_ifs_forecast_over_europe_in_november_is_refused_in_one_line(
    tmp_path: Path, planet: tuple[Path, Path]
) -> None:
    output = tmp_path / "out" / "ml137.grib2"
    result = run_cli(
        "correct", "--ifs", str(shared_file(ML137)), "--checkpoint", str(planet[1]),
        "-o", str(output),
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and line.startswith("error:")
    assert "outside the checkpoint's experience" in line and "--allow-unfamiliar" in line
    assert "month 2018-11 (November): the checkpoint's statistics hold only January" in line
    assert "temperature level 137: mean +" in line  # a warmer and more varied atmosphere
    assert sorted(p.name for p in output.parent.iterdir() if not p.name.endswith(".lock")) == [
        "atmorep.log"
    ]  # the log says what happened; no product


def test_allowed_it_is_processed_with_the_findings_in_the_log_and_the_manifest(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, planet: tuple[Path, Path]
) -> None:
    output = tmp_path / "ml137.grib2"
    code, stdout, stderr = atmorep(
        capsys, "correct", "--ifs", str(shared_file(ML137)), "--checkpoint", str(planet[1]),
        "-o", str(output), "--allow-unfamiliar", "--json",
    )  # fmt: skip
    assert code == 0, stderr
    findings = json.loads(stdout)["unfamiliar"]
    assert findings[0].startswith("month 2018-11 (November)")
    assert any(f.startswith("temperature level 137: mean +") for f in findings)
    assert json.loads(output.with_suffix(".json").read_text())["unfamiliar"] == findings
    log = (tmp_path / "atmorep.log").read_text()
    assert f"warning: outside the checkpoint's experience: {findings[0]}" in log
    assert stderr.count("\n") == 1 and stderr.startswith("warning: processed input outside")


def test_the_training_data_pass_as_grib_and_as_the_default_store(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, planet: tuple[Path, Path]
) -> None:
    grib, run = planet
    trained = load_trained(run)
    assert check_grib(trained, grib / PLANET_GRIB, Store.open(trained.training_store)) == ()
    code, stdout, stderr = atmorep(
        capsys, "forecast", "--checkpoint", str(run), "--init", "2020-01-20T03", "--lead", "1h",
        "--out", str(tmp_path), "--json",
    )  # fmt: skip
    assert code == 0, stderr
    assert json.loads(stdout)["unfamiliar"] == [] and "warning" not in stderr


def test_values_far_from_the_training_data_are_refused_before_any_product(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, planet: tuple[Path, Path]
) -> None:
    """The planet's own hours 20 K warmer: same month, same grid, values 5 sigma off."""
    grib, run = planet
    warmer = tmp_path / "warmer.grib"
    write_changed_copy(grib / PLANET_GRIB, warmer, lambda _, values: values + 20.0)
    trained = load_trained(run)
    with pytest.raises(InputDataError, match=r"temperature level 96: mean \+\d+\.\d sigma") as e:
        check_grib(trained, warmer, Store.open(trained.training_store))
    assert "month" not in str(e.value) and "region" not in str(e.value)
    out = tmp_path / "out"
    code, _, stderr = atmorep(
        capsys, "forecast", "--checkpoint", str(run), "--init", "2020-01-20T03", "--lead", "1h",
        "--input", str(warmer), "--out", str(out),
    )  # fmt: skip
    assert code == 3 and len(stderr.strip().splitlines()) == 1
    assert "temperature level 137: mean +" in stderr
    assert sorted(p.name for p in out.iterdir() if not p.name.endswith(".lock")) == [
        "atmorep.log"
    ]  # no product, and the input cache it made is gone


def test_a_month_outside_the_statistics_is_named(planet: tuple[Path, Path]) -> None:
    trained = load_trained(planet[1])
    reference = Reference.of(trained)
    fields = {"temperature": (96, 137)}
    first, last = datetime(2020, 1, 20, 0), datetime(2020, 1, 20, 5)
    sample = store_values(Store.open(trained.training_store), fields, first, last)
    assert reference.months == (202001,) and [f.values.shape for f in sample.fields] == [
        (6, 37 * 72), (6, 37 * 72)
    ]  # fmt: skip
    assert reference.findings(sample) == []
    later = datetime(2020, 1, 21, 0)  # no times held: the product names them, not this check
    assert store_values(Store.open(trained.training_store), fields, later, later).fields == ()
    july = tuple(
        FieldValues(f.name, f.level, f.times + np.timedelta64(182, "D"), f.values)
        for f in sample.fields
    )
    moved = InputValues(sample.lats, sample.lons, july)
    assert reference.findings(moved) == [
        "month 2020-07 (July): the checkpoint's statistics hold only January (2020-01 .. 2020-01)"
    ]


def test_a_forecast_over_germany_against_a_checkpoint_of_the_uk_is_outside_its_region(
    t2m_store: Path, global_store: Path
) -> None:
    """A real COSMO-D2 field (August, Germany, 0.02 deg rotated) and a store on another grid
    against the statistics of the real ERA5 sample (March, UK, 0.25 deg)."""
    uk = Store.open(t2m_store)
    reference = Reference((201903,), {}, uk)
    path = shared_file(COSMO_T2M)
    message = scan_headers(path)[0]
    points = read_points(path, message)
    values = read_values(path, message)[None, ::10]
    when = np.array([message.valid_time], dtype="datetime64[s]")
    germany = InputValues(
        points.lats[::10], points.lons[::10], (FieldValues("t2m", 0, when, values),)
    )
    found = reference.findings(germany)
    assert found[0].startswith("month 2018-08 (August)")
    outside = "region: 88% of the input's points lie outside the checkpoint's grid"
    assert found[1] == f"{outside} ({uk.grid.describe()})"
    elsewhere = store_values(Store.open(global_store), {"t2m": (0,)}, *2 * (datetime(2017, 1, 1),))
    assert reference.findings(elsewhere)[1:] == [
        "grid spacing: the input's 3 x 3 deg, the checkpoint's 0.25 x 0.25 deg"
    ]  # the global grid: no t2m, and every point outside the UK


def test_implausible_values_are_refused_first_and_each_option_lets_one_check_pass(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, planet: tuple[Path, Path]
) -> None:
    grib, run = planet
    hot = tmp_path / "hot.grib"
    write_changed_copy(grib / PLANET_GRIB, hot, lambda _, values: values + 400.0)
    args = ("correct", "--ifs", str(hot), "--checkpoint", str(run), "-o", str(tmp_path / "c.grib2"))
    refusals = [atmorep(capsys, *args), atmorep(capsys, *args, "--allow-implausible")]
    assert [code for code, _, _ in refusals] == [3, 3]
    assert "outside the plausible range 120 .. 350 K" in refusals[0][2]
    assert "outside the checkpoint's experience: temperature level 96: mean +50.0" in refusals[1][2]
    assert not (tmp_path / "c.grib2").exists()
    code, stdout, stderr = atmorep(
        capsys, *args, "--allow-implausible", "--allow-unfamiliar", "--json"
    )
    assert code == 0, stderr
    assert json.loads(stdout)["request"]["correct"]["allow_implausible"] is True
    assert len(json.loads(stdout)["unfamiliar"]) == 2 and (tmp_path / "c.grib2").exists()
