"""Importing the published AtmoRep models: the same forward pass as the original's, within 1e-5.

The fixtures (beside the project, in ../shared/reference/atmorep-original/fixtures) are small
random-weight models saved by the original code, with the inputs it was fed and its outputs.
Here they are fed from the physical windows through this project's own tokenisation, alpha and
masking, so the whole path a product takes is compared, not the network alone. End to end, the
single-field model is imported for a store made with `atmorep sample`, forecasts it as GRIB2 and
is fine-tuned with `train --init-field`, with the store's or the original's statistics.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import xarray as xr
import yaml
import zarr
from click.testing import Result
from typer.testing import CliRunner

from atmorep_cli.main import app
from atmorep_core.data.ingest_plan import IngestOptions
from atmorep_core.data.neighbourhood import token_alpha
from atmorep_core.data.prepare import prepare
from atmorep_core.engine.statistics import FieldStatistics
from atmorep_core.errors import CheckpointError, ConfigError, StoreError
from atmorep_core.io.store import Store
from atmorep_core.model.checkpoint import load as load_checkpoint
from atmorep_core.model.config import Recipe, model_config_from_dict
from atmorep_core.model.io import FieldInput
from atmorep_core.model.multiformer import Multiformer, count_parameters
from atmorep_core.model.original.folder import PublishedModel, read_published
from atmorep_core.model.original.normalisation import OriginalNormalisation
from atmorep_core.model.token_info import token_infos
from atmorep_core.model.tokens import tokenize
from atmorep_core.questions.masking import MaskingConfig, apply_plan
from atmorep_core.questions.strategies import ForecastStrategy, InterpolationStrategy, TokenGrid
from tests.helpers import run_cli, shared_file

FIXTURES = (
    Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "atmorep-original"
) / "fixtures"
TOLERANCE = 1e-5
STRATEGIES = {"forecast": ForecastStrategy(), "temporal_interpolation": InterpolationStrategy()}
CASES = [
    ("single", "forecast"),
    ("single", "temporal_interpolation"),
    ("coupled", "forecast"),
    ("legacy", "forecast"),
]


def fixture_folder(case: str) -> Path:
    folder = FIXTURES / case
    if not folder.is_dir():
        pytest.skip(f"AtmoRep reference fixtures not found: {case} (expected in {FIXTURES})")
    return folder


def model_folder(case: str) -> Path:
    return next(fixture_folder(case).glob("id*"))


def invoke(*args: str, succeeds: bool = True) -> Result:
    """`atmorep ARGS` in this process (torch and the model's modules are imported once); an
    error is the exception itself (`run_cli` tests the mapping to one line and an exit code)."""
    result = CliRunner().invoke(app, list(args))
    assert (result.exit_code == 0) == succeeds, result.output
    return result


@pytest.fixture(scope="module")
def published() -> dict[str, PublishedModel]:
    return {case: read_published(model_folder(case)) for case in ("single", "coupled", "legacy")}


def window_times(times: np.ndarray) -> np.ndarray:
    """(T, 3) year, day of year from 0, hour -> (T,) datetime64."""
    years = (times[:, 0].astype(np.int64) - 1970).astype("datetime64[Y]")
    days = years.astype("datetime64[D]") + times[:, 1].astype(np.int64)
    return days.astype("datetime64[h]") + times[:, 2].astype(np.int64)


def field_inputs(
    model: PublishedModel, inputs: Any, strategy: str
) -> tuple[dict[str, FieldInput], dict[str, torch.Tensor]]:
    """Each field's tokens, alpha and mask made by this project from the physical windows."""
    fields, alphas = {}, {}
    times = window_times(inputs["times"])
    for field in model.config.fields:
        window = torch.from_numpy(inputs[f"{field.name}/window"])  # (B, L, T, Y, X)
        tokens = tokenize(window, field.token_size)  # (B, L, n_t, n_y, n_x, t, y, x)
        alpha = torch.stack(
            [
                token_alpha(times, field.levels, 90.0 - lats, lons, field.token_size, 0.25, True)
                for lats, lons in zip(inputs["lats"], inputs["lons"], strict=True)
            ]
        )  # (B, L, n_t, n_y, n_x, 7)
        plan = STRATEGIES[strategy].plan(TokenGrid.of(tokens), tokens.shape[0], torch.Generator())
        fields[field.name], _ = apply_plan(tokens, alpha, plan, torch.Generator())
        alphas[field.name] = alpha
    return fields, alphas


def original_order(ensemble: torch.Tensor, levels: int) -> torch.Tensor:
    """(B, L * Mb, E, P) in sample, level, token order -> (L * B * Mb, E, P) as the original's."""
    b, m, e, p = ensemble.shape
    return ensemble.reshape(b, levels, m // levels, e, p).transpose(0, 1).reshape(-1, e, p)


@pytest.mark.parametrize(("case", "strategy"), CASES)
def test_own_tokens_alpha_and_mask_match_the_originals(
    published: dict[str, PublishedModel], case: str, strategy: str
) -> None:
    model = published[case]
    inputs = np.load(fixture_folder(case) / "inputs.npz")
    fields, alphas = field_inputs(model, inputs, strategy)
    for name, field in fields.items():
        np.testing.assert_array_equal(field.tokens, inputs[f"{strategy}/{name}/tokens_net"])
        infos = token_infos(alphas[name], model.config.field(name).token_size)
        np.testing.assert_allclose(infos.flatten(2, 4), inputs[f"{name}/token_infos_net"])
        masked_idx = inputs[f"{strategy}/{name}/masked_token"]  # (Mb,) within one level
        levels, per_level = len(model.config.field(name).levels), field.masked.shape[1]
        expected = [level * per_level // levels + masked_idx for level in range(levels)]
        np.testing.assert_array_equal(field.target_index[0], np.concatenate(expected))


@pytest.mark.parametrize(("case", "strategy"), CASES)
def test_outputs_equal_the_originals(
    published: dict[str, PublishedModel], case: str, strategy: str
) -> None:
    model = published[case]
    inputs = np.load(fixture_folder(case) / "inputs.npz")
    outputs = np.load(fixture_folder(case) / "outputs.npz")
    fields, _ = field_inputs(model, inputs, strategy)
    with torch.no_grad():
        answers = model.build()(fields)
    assert set(answers) == {f.name for f in model.config.fields if f.predicted}
    for name, answer in answers.items():
        members = original_order(answer.ensemble, len(model.config.field(name).levels))
        expected = outputs[f"{strategy}/{name}/members"]
        assert members.shape == expected.shape
        assert np.abs(members.numpy() - expected).max() < TOLERANCE
        mean = original_order(answer.mean[:, :, None], len(model.config.field(name).levels))
        assert np.abs(mean[:, 0].numpy() - outputs[f"{strategy}/{name}/mean"]).max() < TOLERANCE


@pytest.mark.parametrize("case", ["single", "coupled", "legacy"])
def test_parameter_count_is_the_originals(published: dict[str, PublishedModel], case: str) -> None:
    expected = json.loads((fixture_folder(case) / "expected.json").read_text())
    assert count_parameters(published[case].config)["total"] == expected["parameters_in_forward"]
    assert (
        sum(v.numel() for v in published[case].state.values()) == expected["parameters_in_forward"]
    )


@pytest.mark.parametrize("case", ["single", "coupled", "legacy"])
def test_the_recipe_asks_the_originals_training_question(
    published: dict[str, PublishedModel], case: str
) -> None:
    original = json.loads(next(model_folder(case).glob("*.json")).read_text())
    masking = MaskingConfig.from_dict(published[case].training["masking"])
    assert list(masking.fields) == [entry[0] for entry in original["fields"]]
    for strategy in masking.fields.values():
        assert strategy == ForecastStrategy(time_tokens=original["forecast_num_tokens"])
    assert masking.synced == (case == "coupled")  # BERT_fields_synced, with two fields


def copy_model(case: str, into: Path) -> Path:
    folder = into / model_folder(case).name
    folder.mkdir()
    for file in model_folder(case).iterdir():
        (folder / file.name).write_bytes(file.read_bytes())
    return folder


def test_truncated_weights_are_refused(tmp_path: Path) -> None:
    folder = copy_model("single", tmp_path)
    weights = next(folder.glob("*.mod"))
    weights.write_bytes(weights.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="truncated or not a torch weights file"):
        read_published(folder)


def test_renamed_weights_are_refused(tmp_path: Path) -> None:
    folder = copy_model("single", tmp_path)
    weights = next(folder.glob("*.mod"))
    weights.rename(folder / "AtmoRep_idother.mod")
    with pytest.raises(CheckpointError, match=r"AtmoRep_idsingle01\.mod: no such file"):
        read_published(folder)


class _Payload:
    """Unpickling this calls `Path.touch(marker)`: what a malicious weights file would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_a_pickle_payload_is_refused_unexecuted(tmp_path: Path) -> None:
    folder = copy_model("single", tmp_path)
    weights = next(folder.glob("*.mod"))
    marker = tmp_path / "executed"
    torch.save({"embeds.0.weight": _Payload(marker)}, weights)
    pickle.loads(pickle.dumps(_Payload(tmp_path / "proof")))  # the payload does run when unpickled
    assert (tmp_path / "proof").exists()
    assert zipfile.is_zipfile(weights)
    with pytest.raises(CheckpointError, match="not a plain state dict, refused unread"):
        read_published(folder)
    assert not marker.exists()


def test_an_unknown_option_is_refused_by_key_and_value(tmp_path: Path) -> None:
    folder = copy_model("single", tmp_path)
    config = next(folder.glob("*.json"))
    data = json.loads(config.read_text())
    data["decoder_self_att"] = True
    config.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"^decoder_self_att: True is not supported"):
        read_published(folder)
    data["decoder_self_att"], data["with_rotary_positions"] = False, 1
    config.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"^with_rotary_positions: unknown option \(value 1\)"):
        read_published(folder)


def test_default_options_keep_todays_network() -> None:
    """The new options' defaults build exactly the network of before: the parameter counts and
    the seeded initial weights' sum below were taken from the code before the options existed."""
    small = {"encoder_layers": 1, "decoder_layers": 1, "tail_heads": 2}
    config = model_config_from_dict(
        {"fields": [
            {"name": "t", "levels": [1], "embed_dim": 16, "num_heads": 4, **small},
            {"name": "u", "levels": [1, 2], "embed_dim": 8, "num_heads": 2, "qk_norm": True,
             **small},
        ]}
    )  # fmt: skip
    assert count_parameters(config) == {"t": 17766, "u": 8174, "total": 25940}
    torch.manual_seed(0)
    state = Multiformer(config).state_dict()
    assert sum(float(v.double().sum()) for v in state.values()) == pytest.approx(
        216.15638937431595, abs=1e-9
    )


def test_every_layer_of_the_single_model_equals_the_originals(
    published: dict[str, PublishedModel],
) -> None:
    """Embedding, each encoder and decoder layer, the tail's input: a mismatch is located."""
    model = published["single"].build()
    field = model.field("temperature")
    inputs = np.load(fixture_folder("single") / "inputs.npz")
    expected = np.load(fixture_folder("single") / "intermediates.npz")
    seen: dict[str, torch.Tensor] = {}
    modules = {
        "embed/temperature": field.embedding,
        **{f"encoder/temperature/layer{i}/mlp": b for i, b in enumerate(field.encoder)},
        **{f"decoder/temperature/layer{i}/mlp": b for i, b in enumerate(field.decoder)},
    }
    for key, module in modules.items():
        module.register_forward_hook(lambda _m, _i, out, key=key: seen.__setitem__(key, out))
    field.tail.register_forward_pre_hook(lambda _m, args: seen.__setitem__("tail", args[0]))
    fields, _ = field_inputs(published["single"], inputs, "forecast")
    with torch.no_grad():
        model(fields)
    for key in modules:
        reference = expected[f"forecast/{key}"]  # (B, L, n_t, n_y * n_x, D)
        ours = seen[key].reshape(reference.shape).numpy()
        assert np.abs(ours - reference).max() < TOLERANCE, key
    tail_input = original_order(seen["tail"][:, :, None], levels=2)[:, 0]
    assert (
        np.abs(tail_input.numpy() - expected["forecast/tail_input/temperature"]).max() < TOLERANCE
    )


IFS_MODEL_LEVELS = "ifs/ifs-fc-ml137-t-u-v-q-20181114T12-step24.grib2"  # t on levels 1..137


@pytest.fixture(scope="module")
def temperature_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Temperature on the fixtures' model levels 96 and 137 (one time step: statistics only)."""
    path = tmp_path_factory.mktemp("import") / "t.zarr"
    options = IngestOptions(fields=("temperature",), levels=(96, 137))
    prepare([shared_file(IFS_MODEL_LEVELS)], path, options)
    return path


@pytest.fixture(scope="module")
def coupled_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Temperature and u wind on levels 96 and 137: every fixture model's fields."""
    path = tmp_path_factory.mktemp("import-coupled") / "tu.zarr"
    options = IngestOptions(fields=("temperature", "velocity_u"), levels=(96, 137))
    prepare([shared_file(IFS_MODEL_LEVELS)], path, options)
    return path


@pytest.mark.parametrize("case", ["single", "coupled", "legacy"])
def test_import_writes_a_run_folder_with_the_same_outputs(
    tmp_path: Path, coupled_store: Path, case: str
) -> None:
    run = tmp_path / "run"
    done = invoke(
        "import-atmorep", str(model_folder(case)), "--run-dir", str(run),
        "--store", str(coupled_store),
    )  # fmt: skip
    assert done.stderr.strip() == (
        f"normalisation: the store's own statistics ({coupled_store}), not the original's"
    )
    saved = load_checkpoint(run, training_state=False)
    config = Recipe.from_dict(yaml.safe_load((run / "recipe.yaml").read_text())).model
    model = Multiformer(config)
    model.load_state_dict(saved.model, strict=True)
    reloaded = PublishedModel(case, config, saved.model)
    inputs = np.load(fixture_folder(case) / "inputs.npz")
    outputs = np.load(fixture_folder(case) / "outputs.npz")
    fields, _ = field_inputs(reloaded, inputs, "forecast")
    with torch.no_grad():
        answers = model.eval()(fields)
    assert answers
    for name, answer in answers.items():
        members = original_order(answer.ensemble, len(config.field(name).levels))
        expected = outputs[f"forecast/{name}/members"]
        assert np.abs(members.numpy() - expected).max() < TOLERANCE
        assert saved.normalisation[name]["levels"] == [96, 137]
    counted = json.loads(invoke("model", str(run), "--json").stdout)  # a run folder: its recipe
    expected_count = json.loads((fixture_folder(case) / "expected.json").read_text())
    assert counted["total_parameters"] == expected_count["parameters_in_forward"]


def test_import_refuses_a_store_without_the_models_fields(
    tmp_path: Path, temperature_store: Path
) -> None:
    run = tmp_path / "run"
    done = run_cli(
        "import-atmorep", str(model_folder("coupled")), "--run-dir", str(run),
        "--store", str(temperature_store),
    )  # fmt: skip
    assert done.returncode == 4
    assert done.stderr.strip().splitlines() == [
        f"error: {temperature_store}: no field 'velocity_u' (the model needs it; the store has "
        "temperature)"
    ]
    assert not run.exists()
    assert not (tmp_path / "run.importing").exists()


# `atmorep sample`, tiny: 18 hours from 2020-01-31T12 (two months) on a 5-degree grid.
SAMPLE = ["--start", "2020-01-31T12", "--days", "0.75", "--spinup-days", "0.25"]
SAMPLE += ["--resolution", "5", "--truncation", "21", "--layers", "8"]


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Temperature (levels 96 .. 137) of the embedded sample, as `make demo` makes it."""
    folder = tmp_path_factory.mktemp("sample")
    invoke("sample", "--out", str(folder / "grib"), *SAMPLE)
    grib = str(folder / "grib" / "era5_temperature_*.grib")
    invoke("prepare", grib, "--store", str(folder / "t.zarr"))
    return folder / "t.zarr"


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory, sample_store: Path) -> Path:
    run = tmp_path_factory.mktemp("imported") / "run"
    invoke("import-atmorep", str(model_folder("single")), "--run-dir", str(run),
           "--store", str(sample_store))  # fmt: skip
    return run


def forecast(run: Path, out: Path, *options: str) -> xr.DataArray:
    """A 3-hour forecast from 2020-01-31T18 as cfgrib reads its GRIB2 product."""
    invoke("forecast", "--init", "2020-01-31T18", "--checkpoint", str(run), "--lead", "3h",
           "--out", str(out), *options)  # fmt: skip
    grib = out / "forecast_20200131T1800.grib2"
    return xr.open_dataset(grib, engine="cfgrib", backend_kwargs={"indexpath": ""})["t"].load()


@pytest.fixture(scope="module")
def sample_forecast(tmp_path_factory: pytest.TempPathFactory, sample_run: Path) -> xr.DataArray:
    return forecast(sample_run, tmp_path_factory.mktemp("forecast"))


def test_the_imported_model_forecasts_a_sample_store_as_grib2(
    sample_forecast: xr.DataArray, sample_store: Path
) -> None:
    """The random-weight model's answers, de-normalised with the store's per-point monthly
    statistics of 18 hours, lie within 2 K of the truth where the field varies by over 10 K."""
    product = sample_forecast
    assert product.hybrid.values.tolist() == [96, 137]
    assert (product.step.values == np.array([1, 2, 3], dtype="timedelta64[h]")).all()
    assert product.time.values == np.datetime64("2020-01-31T18")
    assert product.shape == (3, 2, 37, 72)
    truth = xr.open_zarr(sample_store, group="temperature")["data"]
    truth = truth.sel(time=product.valid_time.values, level=[96, 137]).values
    rmse = np.sqrt(((product.values - truth) ** 2).mean(axis=(2, 3)))
    assert (rmse < 2.0).all(), rmse
    assert (truth.std(axis=(2, 3)) > 10.0).all()


def test_init_field_fine_tunes_the_imported_model(sample_run: Path, tmp_path: Path) -> None:
    tuned = tmp_path / "tuned"
    done = invoke("train", str(sample_run / "recipe.yaml"), "--run-dir", str(tuned),
                  "--init-field", f"temperature={sample_run}", "--set", "training.steps=10",
                  "--set", "training.batch_size=2", "--json")  # fmt: skip
    assert json.loads(done.stdout[done.stdout.index("{") :])["last_step"] == 10
    before = load_checkpoint(sample_run, training_state=False).model
    after = load_checkpoint(tuned, training_state=False).model
    assert after.keys() == before.keys()
    moved = max(float((after[k] - before[k]).abs().max()) for k in before)
    assert 0 < moved < 0.01  # learnt from the published weights, 10 small steps
    torch.manual_seed(0)
    fresh = Multiformer(Recipe.from_dict(yaml.safe_load((tuned / "recipe.yaml").read_text())).model)
    assert max(float((v - before[k]).abs().max()) for k, v in fresh.state_dict().items()) > 0.5


def write_original_data_file(path: Path, store: Path, levels: list[int], shift: float) -> None:
    """The original's data file (statistics only) for temperature on `store`'s grid: the
    store's monthly statistics, means shifted by `shift` (month rows from January 2020)."""
    arrays = Store.open(store).field("temperature")
    norm = np.stack([np.stack(arrays.local_norm(m)) for m in (202001, 202002)])  # (2, 2, L, Y, X)
    norm[:, 0] += shift
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    root.attrs.update({"fields": ["temperature"], "levels": levels, "fields_sfc": []})
    root.create_array("time", data=np.array(["2020-01-01T00"], dtype="datetime64[ns]"))
    root.create_array("lats", data=90.0 - Store.open(store).grid.lat_axis)
    root.create_array("lons", data=Store.open(store).grid.lon_axis)
    root.create_array("normalization/norm", data=norm[:, :, None].astype(np.float32))
    root.create_array("normalization/global_norm", data=norm[:, :, None].mean((-2, -1)))


def test_the_originals_normalisation_is_used_per_month(
    sample_store: Path, sample_forecast: xr.DataArray, tmp_path: Path
) -> None:
    original = tmp_path / "era5_y2020.zarr"
    write_original_data_file(original, sample_store, [96, 105, 114, 123, 137], shift=1.5)
    run = tmp_path / "run"
    done = invoke("import-atmorep", str(model_folder("single")), "--run-dir", str(run),
                  "--store", str(sample_store), "--normalisation", str(original))  # fmt: skip
    assert done.stderr.strip() == (
        f"normalisation: the original's statistics per year and month ({original}), in "
        f"{run / 'statistics.zarr'} (products: input with --store or --input)"
    )
    saved = load_checkpoint(run, training_state=False).normalisation["temperature"]
    assert saved["months"] == [202001, 202002]
    stats = Store.open(Path(saved["store"]))
    columns = np.arange(stats.grid.shape[1])
    used = FieldStatistics("temperature", (96, 137), saved, stats, slice(None), columns)
    own = Store.open(sample_store).field("temperature").local_norm(202002)
    mean, std = used.mean_std(np.array(["2020-02-01T03"], dtype="datetime64[s]"))
    np.testing.assert_allclose(mean[:, 0], own[0][[0, 4]] + 1.5, rtol=1e-6)
    np.testing.assert_allclose(std[:, 0], own[1][[0, 4]], rtol=1e-6)
    shifted = forecast(run, tmp_path / "fc", "--store", str(sample_store))
    difference = (shifted - sample_forecast).values.mean(axis=(2, 3))  # (step, level)
    np.testing.assert_allclose(difference, 1.5, atol=0.1)  # the means of the statistics
    rows = OriginalNormalisation.open(original).month_rows("temperature", (137,), "global")
    month, (level_mean, _) = next(rows)
    assert month == 202001 and np.ptp(level_mean) == 0  # one value per level, at every point
    np.testing.assert_allclose(level_mean[0, 0, 0], own_mean(sample_store, 202001, 4) + 1.5)


def own_mean(store: Path, month: int, level: int) -> float:
    return float(Store.open(store).field("temperature").local_norm(month)[0][level].mean())


def test_the_originals_normalisation_must_match_the_store(
    sample_store: Path, tmp_path: Path
) -> None:
    original = tmp_path / "era5_y2020.zarr"
    write_original_data_file(original, sample_store, [96, 105, 114, 123, 999], shift=0.0)
    run = tmp_path / "run"
    args = ["import-atmorep", str(model_folder("single")), "--run-dir", str(run),
            "--store", str(sample_store), "--normalisation", str(original)]  # fmt: skip
    done = invoke(*args, succeeds=False)
    assert isinstance(done.exception, StoreError)  # exit code 4
    assert str(done.exception) == (
        f"{original}: temperature has no level 137 (has [96, 105, 114, 123, 999])"
    )
    write_original_data_file(original, sample_store, [96, 137], shift=0.0)
    lons = zarr.open_group(str(original), mode="r+")["lons"]
    lons[:] = lons[:] + 2.5  # between the store's points
    done = invoke(*args, succeeds=False)
    assert isinstance(done.exception, StoreError)
    assert str(done.exception).startswith(f"{original}: the original's statistics are on ")
    assert not run.exists() and not (tmp_path / "run.importing").exists()
