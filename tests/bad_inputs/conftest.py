"""The files, stores, runs and products the cases name, made once for the package (both test
modules share them), and each case's own folder."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from atmorep_core.data.ingest_plan import IngestOptions
from atmorep_core.data.prepare import prepare
from tests.bad_inputs.cli import invoke
from tests.bad_inputs.inputs import INIT, MADE, SHARED, STEM, derived_grib
from tests.bad_inputs.workspace import Workspace
from tests.conftest import train_briefly
from tests.helpers import shared_file, write_brief_recipe
from tests.killer import INGEST_FAULT_POINTS, run_killed


@pytest.fixture(scope="package")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every file of MADE, named NAME.grib with dashes (t2m-hot.grib)."""
    folder = tmp_path_factory.mktemp("bad-gribs")
    return {
        name: derived_grib(
            shared_file(d.source), folder / f"{name.replace('_', '-')}.grib", d.keep,
            d.implausible, d.value,
        )
        for name, d in MADE.items()
    }  # fmt: skip


@pytest.fixture(scope="package")
def half_store(tmp_path_factory: pytest.TempPathFactory, made: dict[str, Path]) -> Path:
    """t2m of 1 March 00 UTC .. 13 March 11 UTC: the second half of the sample continues it."""
    path = tmp_path_factory.mktemp("half") / "t2m.zarr"
    prepare([made["t2m_first"]], path)
    return path


@pytest.fixture(scope="package")
def journal_store(tmp_path_factory: pytest.TempPathFactory, made: dict[str, Path]) -> Path:
    """The global ensemble mean with 1 January committed and the append of 2 January killed
    (kill -9) at its first fault point: its undo journal is there, 2 January is not committed."""
    store = tmp_path_factory.mktemp("journal") / "s.zarr"
    prepare([made["ens_day1"]], store, IngestOptions(member="mean"))
    append = ("prepare", str(made["ens_day2"]), "--store", str(store), "--member", "mean")
    killed = run_killed(1, INGEST_FAULT_POINTS, *append)
    assert killed.returncode == -9, killed.stderr
    assert store.with_name("s.zarr.journal").exists()
    return store


@pytest.fixture(scope="package")
def n80_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Temperature on model levels 1, 51 and 101 trained on the N80 IFS forecast: the whole
    globe in April 2018, so the IFS file over Europe in November 2018 is outside its experience
    (its levels are there: only that can refuse it)."""
    folder = tmp_path_factory.mktemp("n80-run")
    prepare([shared_file(SHARED["n80"])], folder / "n80.zarr")
    model = {"fields": [{
        "name": "temperature", "levels": [1, 51, 101], "token_count": [1, 2, 2],
        "token_size": [1, 9, 9], "embed_dim": 16, "num_heads": 2, "encoder_layers": 1,
        "decoder_layers": 1, "tail_heads": 2, "normalisation": "global",
    }]}  # fmt: skip
    masking = {"fields": {"temperature": {"kind": "BERT"}}}
    return train_briefly(folder, folder / "n80.zarr", model, masking=masking)


def trained_here(recipe_name: str, store: Path, folder: Path, target: Path | None = None) -> Path:
    """`train_recipe_briefly` for 2 steps, in this process (no second start of torch)."""
    path = write_brief_recipe(recipe_name, store, folder, 2, target)
    assert invoke(["train", str(path), "--run-dir", str(folder / "run")]) == 0
    return folder / "run"


@pytest.fixture(scope="package")
def downscale_run(tmp_path_factory: pytest.TempPathFactory, t2m_store: Path) -> Path:
    return trained_here("t2m-downscale.yaml", t2m_store, tmp_path_factory.mktemp("downscale"))


@pytest.fixture(scope="package")
def bias_run(tmp_path_factory: pytest.TempPathFactory, t2m_store: Path) -> Path:
    """Trained with a target (the store itself: enough for `bias-correct` to accept it)."""
    folder = tmp_path_factory.mktemp("bias-run")
    return trained_here("t2m-bias.yaml", t2m_store, folder, target=t2m_store)


@pytest.fixture(scope="package")
def global_product(tmp_path_factory: pytest.TempPathFactory, global_run: Path) -> Path:
    out = tmp_path_factory.mktemp("global-product")
    args = ("forecast", "--checkpoint", str(global_run), "--init", INIT, "--lead", "12h")
    assert invoke([*args, "--out", str(out), "--format", "netcdf", "--json"]) == 0
    return out / f"{STEM}.nc"


@pytest.fixture
def workspace(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Workspace]:
    """The case's folder; what it mounted is unmounted after the case."""
    with ExitStack() as mounts:
        yield Workspace(tmp_path, request, mounts)
