"""`atmorep correct`: regridding, the real IFS files, time windows, cron safety."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import eccodes
import numpy as np
import pytest
import torch
from filelock import FileLock

from atmorep_core.data.ingest_plan import IngestOptions
from atmorep_core.data.prepare import prepare
from atmorep_core.engine.trained import TrainedModel, load_trained
from atmorep_core.errors import ConfigError, MissingInputError
from atmorep_core.grid import LatLonGrid, gaussian_latitudes
from atmorep_core.io.grib_messages import read_points, read_values
from atmorep_core.io.grib_scan import scan_headers
from atmorep_core.io.run_folder import LOCK_NAME
from atmorep_core.io.store import Store
from atmorep_core.model.config import model_config_from_dict
from atmorep_core.model.io import FieldInput, FieldOutput
from atmorep_core.products.correct import (
    CorrectRequest,
    _denoise_windows,
    _forecast_windows,
    correct,
)
from atmorep_core.regrid import Points, Regridder
from atmorep_core.sample.simulate import SampleSettingError, SampleSettings, generate_sample
from tests.conftest import train_briefly
from tests.helpers import (
    grib_messages,
    open_cfgrib,
    read_grib,
    run_cli,
    shared_file,
    write_messages,
)

N80 = "ifs/ifs-fc-t-ml-n80-20180405T12-step12.grib"
ML137 = "ifs/ifs-fc-ml137-t-u-v-q-20181114T12-step24.grib2"
SEED_LEVELS = [96, 105, 114, 123, 137]
FIELDS = ("temperature", "velocity_u", "velocity_v", "specific_humidity")


def smooth_field(lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    """A smooth field on the sphere (each term vanishes at the poles as its wave needs)."""
    la, lo = np.radians(lats), np.radians(lons)
    wave3 = 5 * np.cos(la) ** 3 * np.sin(la) * np.cos(3 * lo)
    return 280 + 20 * np.cos(la) ** 2 + wave3 + 2 * np.cos(la) ** 5 * np.sin(5 * lo)


def grid_points(grid: LatLonGrid) -> Points:
    lats, lons = np.meshgrid(grid.lats, grid.lons, indexing="ij")
    return Points(lats.ravel(), lons.ravel())


def test_n80_gaussian_to_the_model_grid_and_back_within_the_stated_error() -> None:
    """The accuracy stated in regrid.py: 0.05 K everywhere, poles and date line included."""
    path = shared_file(N80)
    gaussian = read_points(path, scan_headers(path)[0])  # the real file's N80 points
    model = grid_points(LatLonGrid.global_grid(1.5))
    there = Regridder(gaussian, model)(smooth_field(gaussian.lats, gaussian.lons))
    assert np.abs(there - smooth_field(model.lats, model.lons)).max() < 0.05
    back = Regridder(model, gaussian)(there)
    assert np.abs(back - smooth_field(gaussian.lats, gaussian.lons)).max() < 0.08
    # The real temperature at level 101 loses the detail 1.5 degrees cannot hold (0.62 K RMS);
    # `correct` never sends the field itself round this trip, only the model's change to it.
    real = read_values(path, scan_headers(path)[2])
    trip = Regridder(model, gaussian)(Regridder(gaussian, model)(real))
    assert np.sqrt(np.mean((trip - real) ** 2)) < 0.8


def test_a_reduced_gaussian_grid_regrids_as_well() -> None:
    """Octahedral O48 rows (20 + 4 i points per row from the pole), as operational IFS sends."""
    lats = gaussian_latitudes(48)
    counts = [20 + 4 * min(i, 95 - i) for i in range(96)]
    rows = [(lat, 360.0 * np.arange(n) / n) for lat, n in zip(lats, counts, strict=True)]
    reduced = Points(
        np.concatenate([np.full(len(lons), lat) for lat, lons in rows]),
        np.concatenate([lons for _, lons in rows]),
    )
    model = grid_points(LatLonGrid.global_grid(2.0))
    there = Regridder(reduced, model)(smooth_field(reduced.lats, reduced.lons))
    assert np.abs(there - smooth_field(model.lats, model.lons)).max() < 0.1
    identity = Regridder(model, model)(there)
    np.testing.assert_allclose(identity, there, atol=1e-4)


def test_the_137_level_file_holds_the_seed_levels_of_t_u_v_q() -> None:
    messages = scan_headers(shared_file(ML137))
    held = {(m.short_name, m.level) for m in messages if m.level_type == "hybrid"}
    assert all((name, level) in held for name in "tuvq" for level in SEED_LEVELS)
    assert len(messages) == 550 and {m.step_hours for m in messages} == {24}


def test_denoise_windows_cover_every_step_and_repeat_a_short_run() -> None:
    step = np.timedelta64(1, "h")
    times = np.datetime64("2020-02-01T00", "s") + step * np.arange(10)
    windows = _denoise_windows(np.arange(10), times, step, 4)
    assert sorted({int(t) for w in windows for t in w.targets}) == list(range(10))
    assert [list(w.source) for w in windows] == [[0, 1, 2, 3], [4, 5, 6, 7], [6, 7, 8, 9]]
    single = _denoise_windows(np.array([3]), times, step, 4)[0]
    assert list(single.source) == [3, 3, 3, 3] and list(single.answered) == [0]
    assert single.times[-1] == times[3] + 3 * step  # the steady state runs on in time


def test_forecast_windows_correct_only_steps_with_history() -> None:
    step = np.timedelta64(1, "h")
    times = np.datetime64("2020-02-01T00", "s") + step * np.arange(8)
    windows = _forecast_windows(np.arange(8), times, step, length=4, given=3)  # 1 step ahead
    assert [int(w.targets[0]) for w in windows] == [3, 4, 5, 6, 7]
    assert list(windows[0].source) == [0, 1, 2, 3] and windows[0].times[3] == times[3]
    wide = _forecast_windows(np.arange(8), times, step, length=6, given=3)  # 3 steps ahead
    assert [list(w.targets) for w in wide] == [[3, 4, 5], [6, 7]]
    assert list(wide[1].source) == [3, 4, 5, 6, 7, 7]  # hidden past the end: never seen
    assert _forecast_windows(np.arange(3), times, step, length=4, given=3) == []


ML137_MODEL = {
    "fields": [
        {
            "name": name, "levels": SEED_LEVELS, "token_count": [1, 2, 2],
            "token_size": [1, 9, 9], "embed_dim": 16, "num_heads": 4, "encoder_layers": 1,
            "decoder_layers": 1, "tail_heads": 2, "normalisation": "global",
        }
        for name in FIELDS
    ]
}  # fmt: skip


@pytest.fixture(scope="module")
def ml137_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seed's levels of t, u, v, q from the 137-level file, on its own 1.5-degree grid."""
    store = tmp_path_factory.mktemp("ml137") / "ifs.zarr"
    prepare([shared_file(ML137)], store, IngestOptions(fields=FIELDS, levels=tuple(SEED_LEVELS)))
    return store


@pytest.fixture(scope="module")
def ml137_run(ml137_store: Path) -> Path:
    """A checkpoint on those fields and levels (single times: it denoises, it cannot forecast)."""
    masking = {"fields": {name: {"kind": "BERT"} for name in FIELDS}}
    return train_briefly(ml137_store.parent, ml137_store, ML137_MODEL, masking=masking)


def correct_cli(*args: str) -> Any:
    result = run_cli("correct", *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_correct_writes_grib2_on_the_input_grid_with_the_input_keys(
    tmp_path: Path, ml137_run: Path
) -> None:
    source, output = shared_file(ML137), tmp_path / "ml137.corrected.grib2"
    summary = correct_cli("--ifs", str(source), "--checkpoint", str(ml137_run), "-o", str(output))
    assert summary["corrected_messages"] == 20 and summary["passed_through"] == 530
    assert summary["fields"] == {name: SEED_LEVELS for name in FIELDS}
    keys = ("shortName", "typeOfLevel", "level", "dataDate", "dataTime", "step", "gridType")
    keys += ("edition", "class", "type", "stream", "typeOfGeneratingProcess")
    before, after = read_grib(source, keys), read_grib(output, keys)
    assert len(after) == len(before) == 550
    raw, out = grib_messages(source), grib_messages(output)
    for index, (old, new) in enumerate(zip(before, after, strict=True)):
        corrected = new["shortName"] in {"t", "u", "v", "q"} and new["level"] in SEED_LEVELS
        for key in keys[:-1]:
            assert new[key] == old[key], (index, key)
        np.testing.assert_array_equal(new["lats"], old["lats"])
        np.testing.assert_array_equal(new["lons"], old["lons"])
        if corrected:  # marked post-processed forecast, new values of the same size
            assert new["typeOfGeneratingProcess"] == 14
            assert np.all(np.isfinite(new["values"])) and new["values"].shape == (34, 48)
        else:
            assert raw[index] == out[index]  # passed through byte for byte
    temperature = open_cfgrib(output, shortName="t", typeOfLevel="hybrid")["t"]
    assert temperature.shape == (137, 34, 48) and float(temperature.longitude[0]) == -30.0
    changed = temperature.sel(hybrid=SEED_LEVELS).values  # what the model made of it, in K
    assert np.abs(changed - np.stack(_input_levels(source, "t"))).max() > 0.01
    assert changed.min() > 180.0 and changed.max() < 330.0


def _input_levels(path: Path, short_name: str) -> list[np.ndarray]:
    found = {}
    for message in scan_headers(path):
        if message.short_name == short_name and message.level in SEED_LEVELS:
            found[message.level] = read_values(path, message).reshape(34, 48)
    return [found[level] for level in SEED_LEVELS]


def test_the_n80_file_against_a_checkpoint_on_other_levels_names_them(
    tmp_path: Path, ml137_run: Path
) -> None:
    output = tmp_path / "n80.grib2"
    result = run_cli(
        "correct", "--ifs", str(shared_file(N80)), "--checkpoint", str(ml137_run), "-o", str(output)
    )
    assert result.returncode == 3, result.stderr
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "temperature" in line and "levels 96, 105, 114, 123, 137" in line
    assert "the file has levels 1, 51, 101" in line
    assert not output.exists() and not output.with_suffix(".json").exists()


def test_forecast_mode_needs_a_history_and_unknown_fields_are_named(
    ml137_run: Path, ml137_store: Path
) -> None:
    trained, store = load_trained(ml137_run), Store.open(ml137_store)
    source = shared_file(ML137)
    with pytest.raises(ConfigError, match="sees 1 time step"):
        correct(trained, store, None, source, CorrectRequest(mode="forecast"))
    with pytest.raises(ConfigError, match="--fields: the checkpoint has no tp"):
        correct(trained, store, None, source, CorrectRequest(fields=("t", "tp")))
    with pytest.raises(ConfigError, match="denoise, forecast"):
        CorrectRequest(mode="sideways")  # type: ignore[arg-type]


def test_a_rerun_is_a_no_op_and_a_locked_folder_is_refused(tmp_path: Path, ml137_run: Path) -> None:
    args = ("--ifs", str(shared_file(ML137)), "--checkpoint", str(ml137_run))
    output = tmp_path / "c.grib2"
    first = correct_cli(*args, "-o", str(output), "--fields", "t")
    again = correct_cli(*args, "-o", str(output), "--fields", "t")
    assert not first["skipped"] and again["skipped"] and first["corrected_messages"] == 5
    assert json.loads((tmp_path / "c.json").read_text())["outputs"] == first["outputs"]
    with FileLock(tmp_path / LOCK_NAME):
        busy = run_cli("correct", *args, "-o", str(output), "--force")
    assert busy.returncode == 5 and LOCK_NAME in busy.stderr
    log = (tmp_path / "atmorep.log").read_text().splitlines()
    assert [line.split()[1] for line in log] == ["start", "done", "start", "up", "start", "error"]


def test_grib1_input_is_corrected_as_grib2(tmp_path: Path) -> None:
    """A corrected GRIB1 message becomes GRIB2 (which can say "post-processed")."""
    from atmorep_core.io.grib_messages import rewrite

    handle = eccodes.codes_grib_new_from_samples("GRIB1")
    source = tmp_path / "one.grib"
    source.write_bytes(eccodes.codes_get_message(handle))
    eccodes.codes_release(handle)
    message = scan_headers(source)[0]
    values = read_values(source, message) + 1.0
    rewrite(source, tmp_path / "out.grib", {0: values})
    [record] = read_grib(tmp_path / "out.grib", ("edition", "typeOfGeneratingProcess", "level"))
    assert record["edition"] == 2 and record["typeOfGeneratingProcess"] in (13, 14)
    np.testing.assert_allclose(record["values"].ravel(), values, atol=0.01)


COMPANION = SampleSettings(
    start=datetime(2020, 2, 1, 0), days=4 / 24, spinup_days=0.5, resolution_deg=5.0,
    truncation=21, layers=8, seed=3, ifs_like_hours=3,
)  # fmt: skip
COMPANION_MODEL = {
    "fields": [
        {
            "name": "temperature", "levels": [96, 137], "token_count": [2, 2, 4],
            "token_size": [1, 6, 6], "embed_dim": 16, "num_heads": 2, "encoder_layers": 1,
            "decoder_layers": 1, "tail_heads": 2, "normalisation": "global",
        }
    ]
}  # fmt: skip


@pytest.mark.slow
def test_the_ifs_like_companion_is_ifs_grib2_and_forecast_mode_corrects_it(
    tmp_path: Path,
) -> None:
    files = generate_sample(tmp_path / "grib", COMPANION)
    ifs = tmp_path / "grib" / "ifs_fc_20200201T00.grib2"
    assert ifs in files
    keys = ("class", "stream", "type", "dataDate", "dataTime", "step", "typeOfLevel", "edition")
    records = read_grib(ifs, (*keys, "shortName", "level"))
    assert len(records) == 3 * 6 * 5  # steps x fields x levels
    assert {tuple(r[k] for k in keys) for r in records} == {
        ("od", "oper", "fc", 20200201, 0, step, "hybrid", 2) for step in range(3)
    }
    store = tmp_path / "sample.zarr"
    prepare(sorted((tmp_path / "grib").glob("*.grib")), store)
    truth = Store.open(store).field("temperature")
    t = {(r["level"], r["step"]): r["values"] for r in records if r["shortName"] == "t"}
    assert np.abs(t[(137, 0)] - truth.data[0, 4]).max() < 0.01  # starts from the reference
    drift = [
        np.sqrt(np.mean((t[(lv, 2)] - truth.data[2, i]) ** 2)) for i, lv in ((0, 96), (4, 137))
    ]
    assert drift[1] > 2 * drift[0] > 0  # the boundary-layer error: the lowest level drifts most
    masking = {"fields": {"temperature": {"kind": "forecast"}}}
    run = train_briefly(tmp_path, store, COMPANION_MODEL, masking=masking)
    summary = correct_cli(
        "--ifs", str(ifs), "--checkpoint", str(run), "-o", str(tmp_path / "c.grib2"),
        "--mode", "forecast",
    )  # fmt: skip
    assert summary["valid_times"] == ["2020-02-01T01:00:00", "2020-02-01T02:00:00"]
    assert summary["uncorrected_times"] == ["2020-02-01T00:00:00"]  # no hour before it
    assert summary["corrected_messages"] == 2 * 2  # levels x corrected steps
    first_step = write_messages(tmp_path / "step0.grib2", grib_messages(ifs)[:30])
    with pytest.raises(MissingInputError, match="needs 1 consecutive steps 1 h apart"):
        correct(load_trained(run), Store.open(store), None, first_step, CorrectRequest("forecast"))


def shifting_predictor(shift: float) -> Any:
    """A stand-in model that answers every target token with what it was shown, plus `shift`
    (normalised units): the whole correction chain runs without a trained network."""

    def predict(inputs: Mapping[str, FieldInput]) -> dict[str, FieldOutput]:
        answers = {}
        for name, question in inputs.items():
            tokens = question.tokens.reshape(question.tokens.shape[0], -1, question.token_points)
            index = question.target_index[..., None].expand(-1, -1, tokens.shape[-1])
            answers[name] = FieldOutput(torch.gather(tokens, 1, index)[:, :, None] + shift)
        return answers

    return predict


def test_on_the_n80_gaussian_grid_only_the_models_change_comes_back(tmp_path: Path) -> None:
    """A global regular Gaussian input, a 1.125-degree lat-lon model grid (poles included):
    a model that changes nothing changes nothing, and a model that adds 1 K adds 1 K at every
    Gaussian point, the rows nearest the poles included."""
    source = shared_file(N80)
    store = tmp_path / "n80.zarr"
    prepare([source], store)  # Gaussian -> lat-lon as `prepare` does, 161 x 320 points
    levels = (1, 51, 101)
    config = model_config_from_dict(
        {"fields": [{"name": "temperature", "levels": levels, "token_count": [1, 2, 2],
                     "token_size": [1, 9, 9], "normalisation": "global", "embed_dim": 8,
                     "num_heads": 2, "encoder_layers": 1, "decoder_layers": 1}]}
    )  # fmt: skip
    saved = {"kind": "global", "levels": list(levels), "global_mean": [250.0] * 3,
             "global_std": [2.0] * 3}  # fmt: skip
    trained = TrainedModel(None, config, {"temperature": saved}, {}, 0, tmp_path)  # type: ignore[arg-type]
    opened, request = Store.open(store), CorrectRequest()
    messages = scan_headers(source)
    raw = [read_values(source, m) for m in messages]
    same = correct(trained, opened, None, source, request, predictor=shifting_predictor(0.0))
    warmer = correct(trained, opened, None, source, request, predictor=shifting_predictor(0.5))
    assert sorted(same.values) == [0, 1, 2] and same.domain.shape == (161, 320)
    for index, values in same.values.items():
        assert values.shape == (160 * 320,)
        np.testing.assert_allclose(values, raw[index], atol=1e-3)
        np.testing.assert_allclose(warmer.values[index], raw[index] + 1.0, atol=1e-3)


def test_a_companion_past_the_record_is_refused_by_name() -> None:
    with pytest.raises(SampleSettingError, match="2020-02-02T23 inside the record") as refused:
        SampleSettings(ifs_like_hours=48)  # from 1 February 00 UTC, the record ends at 23 UTC
    assert refused.value.key == "ifs_like_hours"
    late = SampleSettings(ifs_like_hours=3, ifs_like_base=datetime(2020, 2, 1, 21))
    assert late.companion_base == datetime(2020, 2, 1, 21)
    with pytest.raises(SampleSettingError) as refused:
        SampleSettings(ifs_like_hours=4, ifs_like_base=datetime(2020, 2, 1, 21))
    assert refused.value.key == "ifs_like_base"


def test_daily_companions_end_at_the_base_and_must_start_inside_the_record() -> None:
    five = SampleSettings(ifs_like_hours=24, ifs_like_runs=5)  # the record: 28 Jan .. 1 Feb
    assert five.companion_bases == [datetime(2020, 1, d, 0) for d in (28, 29, 30, 31)] + [
        datetime(2020, 2, 1, 0)
    ]
    with pytest.raises(SampleSettingError, match="from 2020-01-27T00") as refused:
        SampleSettings(ifs_like_hours=24, ifs_like_runs=6)
    assert refused.value.key == "ifs_like_runs"
