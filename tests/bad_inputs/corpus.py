"""The corpus: each bad input as a Case, built from each command's arguments with a checkpoint
that can answer its question and `{ws}/out`."""

from __future__ import annotations

from dataclasses import dataclass

from tests.bad_inputs.inputs import INIT
from tests.bad_inputs.workspace import (
    GOOD_RECIPE,
    Setup,
    copy_of,
    corrupt_json,
    damaged,
    existing_out,
    folder_at,
    full_disk,
    plain_file,
    read_only,
    recipe,
    store_on_disk,
    truncated_copy,
    with_value,
)


@dataclass(frozen=True)
class Case:
    """`atmorep ARGS` after `setup`: exit `code`, one `error:` line matching every `words`
    pattern (what the refusal must name), and every watched folder as before. `{NAME}` in ARGS
    is the case's folder (`ws`), a fixture, a shared sample (SHARED) or a made file (MADE);
    `isolated` runs it in a subprocess (see `cli.isolated`)."""

    id: str
    args: tuple[str, ...]
    code: int
    words: tuple[str, ...] = ()
    setup: tuple[Setup, ...] = ()
    isolated: bool = False


# Each command's arguments with a checkpoint that can answer its question and `{ws}/out`.


def forecast(
    *extra: str, run: str = "{global_run}", init: str = INIT, lead: str = "12h"
) -> tuple[str, ...]:
    return ("forecast", "--checkpoint", run, "--init", init, "--lead", lead, "--out", "{ws}/out",
            *extra)  # fmt: skip


def interpolate(
    *extra: str, start: str = "2017-01-01T00", end: str = "2017-01-02T12"
) -> tuple[str, ...]:
    return ("interpolate", "--checkpoint", "{global_run}", "--start", start, "--end", end,
            "--out", "{ws}/out", *extra)  # fmt: skip


def counterfactual(*extra: str, init: str = INIT) -> tuple[str, ...]:
    return ("counterfactual", "--checkpoint", "{global_run}", "--init", init, "--lead", "12h",
            "--out", "{ws}/out", *extra)  # fmt: skip


def downscale(
    *extra: str,
    start: str = "2019-03-21T00",
    end: str = "2019-03-21T05",
    run: str = "{downscale_run}",
) -> tuple[str, ...]:
    return ("downscale", "--checkpoint", run, "--start", start, "--end", end,
            "--out", "{ws}/out", *extra)  # fmt: skip


def correct(*extra: str, ifs: str = "{ml137}", run: str = "{n80_run}") -> tuple[str, ...]:
    return ("correct", "--ifs", ifs, "--checkpoint", run, "-o", "{ws}/out/c.grib2", *extra)


def bias_correct(
    *extra: str, source: str = "{t2m_day}", run: str = "{bias_run}"
) -> tuple[str, ...]:
    return ("bias-correct", source, "--checkpoint", run, "-o", "{ws}/out/b.grib2", *extra)


def evaluate(
    *extra: str, product: str = "{global_product}", truth: str = "{global_store}"
) -> tuple[str, ...]:
    return ("evaluate", product, "--truth", truth, "--out", "{ws}/out", *extra)


def train(
    *extra: str, recipe_path: str = "{ws}/recipe.yaml", run_dir: str = "{ws}/run"
) -> tuple[str, ...]:
    return ("train", recipe_path, "--run-dir", run_dir, "--device", "cpu", *extra)


def prepare_into(source: str, store: str = "{ws}/s.zarr", *extra: str) -> tuple[str, ...]:
    return ("prepare", source, "--store", store, *extra)


E30 = r"e\+?30\b"  # 1e30 as any float format writes it
SIZE = r"\d(\.\d+)? ?[KMGTPE]i?B"  # a memory estimate, e.g. 42.6 TiB
HALF = (copy_of("half_store", "s.zarr"),)
OUT = (existing_out,)
CORRUPT = "era5-levels-corrupted.grib"
NOVEMBER = "November|2018-11"  # the IFS file's month, which the N80 checkpoint never saw

CASES = [
    # prepare: missing, corrupt and implausible input; wrong stores; full and read-only disks
    Case("prepare-missing-file", prepare_into("{ws}/nosuch.grib"), 3, ("nosuch.grib",), HALF),
    Case("prepare-corrupt-grib", prepare_into("{corrupt_grib}"), 3, (CORRUPT,), HALF),
    Case("prepare-corrupt-grib-new-store", prepare_into("{corrupt_grib}", "{ws}/new.zarr"), 3),
    Case("prepare-1e30-K", prepare_into("{t2m_hot}"), 3, ("t2m-hot.grib", E30), HALF),
    Case("prepare-minus-500-K", prepare_into("{t2m_cold}"), 3, ("t2m-cold.grib", r"-500\b"), HALF),
    Case("prepare-1e30-K-new-store", prepare_into("{t2m_hot}", "{ws}/new.zarr"), 3, (E30,)),
    Case("prepare-fields-nosuch", prepare_into("{t2m_first}", "{ws}/new.zarr", "--fields",
         "nosuch"), 2, ("nosuch",)),
    Case("prepare-missing-level", prepare_into("{ensemble_grib}", "{ws}/new.zarr", "--levels",
         "700"), 3, ("700",)),
    Case("prepare-member-abc", prepare_into("{ensemble_grib}", "{ws}/new.zarr", "--member",
         "abc"), 2, ("--member",)),
    Case("prepare-other-grid", prepare_into("{ensemble_grib}"), 4, ("grid",), HALF),
    Case("prepare-store-not-a-store", prepare_into("{t2m_first}", "{ws}/out"), 4, ("out",), OUT),
    Case("prepare-corrupt-zarr-json", prepare_into("{ens_day1}", "{ws}/s.zarr", "--member",
         "mean"), 4, ("zarr.json",), (corrupt_json("."),)),
    Case("prepare-full-disk", prepare_into("{t2m_second}", "{ws}/disk/s.zarr"), 7,
         ("No space left",), (store_on_disk(256 << 10),)),
    Case("prepare-read-only", prepare_into("{t2m_second}", "{ws}/disk/s.zarr"), 7,
         ("Read-only",), (store_on_disk(None),)),
    # info: a store that is not there, not one, or corrupt
    Case("info-missing-store", ("info", "{ws}/nosuch.zarr"), 4, ("nosuch.zarr",)),
    Case("info-a-file", ("info", "{ws}/s.zarr"), 4, ("s.zarr",), (plain_file("s.zarr"),)),
    Case("info-corrupt-root-json", ("info", "{ws}/s.zarr"), 4, ("zarr.json",),
         (corrupt_json("."),)),
    Case("info-corrupt-field-json", ("info", "{ws}/s.zarr"), 4, ("zarr.json",),
         (corrupt_json("temperature"),)),
    # model and train: recipes, overrides, run folders, checkpoints
    Case("model-missing-recipe", ("model", "{ws}/nosuch.yaml"), 2, ("nosuch.yaml",)),
    Case("model-not-yaml", ("model", "{ws}/recipe.yaml"), 2, ("recipe.yaml",),
         (recipe(lambda raw: "model: [unclosed\n"),)),
    Case("model-unknown-key", ("model", "{ws}/recipe.yaml"), 2, ("nosuch_key",),
         (recipe(with_value("model.fields.0.nosuch_key", 1)),)),
    Case("model-wrong-type", ("model", "{ws}/recipe.yaml"), 2, ("embed_dim",),
         (recipe(with_value("model.fields.0.embed_dim", "wide")),)),
    Case("model-heads-do-not-divide-the-width", ("model", "{ws}/recipe.yaml"), 2, ("num_heads",),
         (recipe(with_value("model.fields.0.num_heads", 3)),)),
    Case("train-unknown-key", train(), 2, ("nosuch_key",),
         (recipe(with_value("training.nosuch_key", 1)),)),
    Case("train-set-wrong-type", train("--set", "training.steps=many"), 2, ("steps",),
         (GOOD_RECIPE,)),
    Case("train-set-without-value", train("--set", "training.steps"), 2, ("--set",),
         (GOOD_RECIPE,)),
    Case("train-set-unknown-section", train("--set", "nosuch.key=1"), 2, ("nosuch",),
         (GOOD_RECIPE,)),
    Case("train-missing-store", train("--set", "data.store={ws}/nosuch.zarr"), 4,
         ("nosuch.zarr",), (GOOD_RECIPE,)),
    Case("train-into-a-run-with-checkpoints", train(recipe_path="{ws}/run/recipe.yaml"), 2,
         ("--resume",), (copy_of("global_run", "run"),)),
    Case("train-resume-truncated-weights", train("--resume", recipe_path="{ws}/run/recipe.yaml"),
         4, ("model.safetensors",), (damaged("truncated"),)),
    Case("train-init-field-from-torch-save", train("--init-field", "temperature={ws}/run",
         run_dir="{ws}/new"), 4, ("model.safetensors",), (GOOD_RECIPE, damaged("torch.save"))),
    Case("train-init-field-missing-run", train("--init-field", "temperature={ws}/nosuch"), 4,
         ("nosuch",), (GOOD_RECIPE,)),
    Case("train-run-dir-a-file", train(), 7, ("run",), (GOOD_RECIPE, plain_file("run"))),
    Case("train-read-only-run-dir", train(run_dir="{ws}/ro/run"), 7, ("Read-only",),
         (GOOD_RECIPE, read_only("ro"))),
    # forecast: times, leads, members, plots and formats, refused before any work
    Case("forecast-init-2019-13-40", forecast(init="2019-13-40"), 2, ("--init", "2019-13-40")),
    Case("forecast-init-tomorrow", forecast(init="tomorrow"), 2, ("--init", "tomorrow")),
    Case("forecast-init-half-hour", forecast(init="2017-01-02T00:30"), 2, ("--init",)),
    # 100000000 h rounded up to a whole number of the store's 12 h steps
    Case("forecast-lead-100000008h", forecast(lead="100000008h"), 2, ("--lead", SIZE),
         isolated=True),
    Case("forecast-members-100000000", forecast("--members", "100000000"), 2,
         ("--members", SIZE), isolated=True),
    Case("forecast-members-0", forecast("--members", "0"), 2, ("--members",)),
    Case("forecast-members-abc", forecast("--members", "abc"), 2, ("--members",)),
    Case("forecast-no-init", ("forecast", "--checkpoint", "{global_run}", "--out", "{ws}/out"),
         2, ("--init",)),
    Case("forecast-lead-0h", forecast(lead="0h"), 2, ("--lead",)),
    Case("forecast-plot-nosuch", forecast("--plot", "nosuch"), 2, ("nosuch",)),
    Case("forecast-plot-lead-not-a-lead", forecast("--plot", "temperature", "--plot-lead", "7h"),
         2, ("--plot-lead",)),
    Case("forecast-format-tiff", forecast("--format", "tiff"), 2, ("--format", "tiff")),
    Case("forecast-area-beyond-the-pole", forecast("--area", "95/0/80/10"), 2, ("--area",)),
    # forecast: checkpoints, stores and input files
    Case("forecast-missing-checkpoint", forecast(run="{ws}/nosuch"), 4, ("nosuch",), OUT),
    Case("forecast-weights-missing", forecast(run="{ws}/run"), 4, ("model.safetensors",),
         (damaged("missing"), existing_out)),
    Case("forecast-weights-truncated", forecast(run="{ws}/run"), 4, ("model.safetensors",),
         (damaged("truncated"), existing_out)),
    Case("forecast-weights-from-torch-save", forecast(run="{ws}/run"), 4, ("model.safetensors",),
         (damaged("torch.save"), existing_out)),
    Case("forecast-latest-to-nothing", forecast(run="{ws}/run"), 4, ("step-99999999",),
         (damaged("dangling latest"), existing_out)),
    Case("forecast-missing-store", forecast("--store", "{ws}/nosuch.zarr"), 4, ("nosuch.zarr",),
         OUT),
    Case("forecast-init-after-the-store", forecast(init="2017-01-05T00"), 6, ("2017-01-0",), OUT),
    Case("forecast-store-being-updated", forecast("--store", "{ws}/s.zarr"), 6,
         ("updat", "retry"), (copy_of("journal_store", "s.zarr"), existing_out)),
    Case("forecast-input-corrupt", forecast("--input", "{corrupt_grib}"), 3, (CORRUPT,), OUT),
    Case("forecast-input-missing", forecast("--input", "{ws}/nosuch.grib"), 3, ("nosuch.grib",),
         OUT),
    Case("forecast-input-1e30-K", forecast("--input", "{ens_hot}"), 3, ("ens-hot.grib", E30),
         OUT),
    # forecast: where the products go
    Case("forecast-out-a-file", forecast(), 7, ("out",), (plain_file("out"),)),
    Case("forecast-full-disk", forecast(), 7, ("No space left",), (full_disk("out", 48 << 10),)),
    Case("forecast-read-only", forecast(), 7, ("Read-only",), (read_only("out"),)),
    # interpolate and counterfactual: their times and alpha changes
    Case("interpolate-end-before-start", interpolate(end="2016-12-31T00"), 2, ("--end",)),
    Case("interpolate-start-30-february", interpolate(start="2017-02-30T00"), 2, ("--start",)),
    Case("interpolate-plot-time-tomorrow", interpolate("--plot-time", "tomorrow"), 2,
         ("--plot-time",)),
    Case("interpolate-input-every-0h", interpolate("--input-every", "0h"), 2, ("--input-every",)),
    Case("interpolate-plot-nosuch", interpolate("--plot", "nosuch"), 2, ("nosuch",)),
    Case("counterfactual-unknown-alpha", counterfactual("--set", "yr=2050"), 2, ("yr",)),
    Case("counterfactual-shift-without-value", counterfactual("--shift", "hour"), 2,
         ("--shift",)),
    Case("counterfactual-shift-year-abc", counterfactual("--shift-year", "abc"), 2,
         ("--shift-year",)),
    Case("counterfactual-init-30-february", counterfactual(init="2017-02-30T00"), 2,
         ("--init",)),
    # downscale
    Case("downscale-not-a-downscaling-checkpoint", downscale("--input", "{ensemble_grib}",
         run="{global_run}", start=INIT, end="2017-01-02T12"), 2, ("downscaling",), OUT),
    Case("downscale-start-tomorrow", downscale(start="tomorrow"), 2, ("--start",)),
    Case("downscale-end-before-start", downscale(end="2019-03-20T00"), 2, ("--end",)),
    Case("downscale-to-nosuch-grid", downscale("--to", "nosuch-grid"), 2, ("nosuch-grid",)),
    Case("downscale-plot-nosuch", downscale("--plot", "nosuch"), 2, ("nosuch",)),
    Case("downscale-input-corrupt", downscale("--input", "{corrupt_grib}"), 3, (CORRUPT,), OUT),
    # correct: the IFS file, its values, the checkpoint's experience, the output
    Case("correct-ifs-outside-the-checkpoints-experience", correct(), 3, (NOVEMBER,), OUT),
    Case("correct-ifs-1e30-K", correct(ifs="{n80_hot}"), 3, ("n80-hot.grib", E30), OUT),
    Case("correct-ifs-missing", correct(ifs="{ws}/nosuch.grib"), 3, ("nosuch.grib",), OUT),
    Case("correct-ifs-corrupt", correct(ifs="{corrupt_grib}"), 3, (CORRUPT,), OUT),
    Case("correct-mode-sideways", correct("--mode", "sideways"), 2, ("sideways",)),
    Case("correct-fields-nosuch", correct("--fields", "nosuch"), 2, ("nosuch",)),
    Case("correct-no-checkpoint", ("correct", "--ifs", "{n80}", "-o", "{ws}/out/c.grib2"), 2,
         ("checkpoint",)),
    Case("correct-weights-truncated", correct(ifs="{n80}", run="{ws}/run"), 4,
         ("model.safetensors",), (damaged("truncated"), existing_out)),
    Case("correct-output-a-folder", correct(ifs="{n80}"), 7, ("c.grib2",),
         (existing_out, folder_at("out/c.grib2"))),
    Case("correct-read-only", correct(ifs="{n80}"), 7, ("Read-only",), (read_only("out"),)),
    Case("correct-full-disk", correct(ifs="{n80}"), 7, ("No space left",),
         (full_disk("out", 48 << 10),)),
    # bias-correct
    Case("bias-correct-checkpoint-without-target", bias_correct(run="{global_run}"), 2,
         ("target",), OUT),
    Case("bias-correct-source-missing", bias_correct(source="{ws}/nosuch.grib"), 3,
         ("nosuch.grib",), OUT),
    Case("bias-correct-source-corrupt", bias_correct(source="{corrupt_grib}"), 3, (CORRUPT,),
         OUT),
    Case("bias-correct-source-1e30-K", bias_correct(source="{t2m_day_hot}"), 3,
         ("t2m-day-hot.grib", E30), OUT),
    Case("bias-correct-obs-missing", bias_correct("--obs", "{ws}/nosuch.zarr"), 4,
         ("nosuch.zarr",), OUT),
    Case("bias-correct-full-disk", bias_correct(), 7, ("No space left",),
         (full_disk("out", 48 << 10),)),
    Case("bias-correct-fields-nosuch", bias_correct("--fields", "nosuch"), 2, ("nosuch",)),
    # evaluate
    Case("evaluate-missing-product", evaluate(product="{ws}/nosuch.nc"), 3, ("nosuch.nc",), OUT),
    Case("evaluate-product-not-netcdf", evaluate(product="{ws}/junk.nc"), 3, ("junk.nc",),
         (existing_out, plain_file("junk.nc", b"<html>404 Not Found</html>\n"))),
    Case("evaluate-product-truncated", evaluate(product="{ws}/cut.nc"), 3, ("cut.nc",),
         (existing_out, truncated_copy("global_product", "cut.nc"))),
    Case("evaluate-missing-truth", evaluate(truth="{ws}/nosuch.zarr"), 4, ("nosuch.zarr",), OUT),
    Case("evaluate-truth-lacks-the-fields", evaluate(truth="{half_store}"), 4, ("temperature",),
         OUT),
    Case("evaluate-climatology-one-time", evaluate("--climatology", "2017-01-01"), 2,
         ("--climatology",)),
    Case("evaluate-climatology-tomorrow", evaluate("--climatology", "tomorrow/2017-01-02"), 2,
         ("--climatology",)),
    Case("evaluate-map-lead-5x", evaluate("--map-lead", "5x"), 2, ("--map-lead",)),
    Case("evaluate-out-a-file", evaluate(), 7, ("out",), (plain_file("out"),)),
    Case("evaluate-read-only", evaluate(), 7, ("Read-only",), (read_only("out"),)),
]  # fmt: skip
