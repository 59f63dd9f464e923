"""Stores and briefly trained checkpoints on the real ERA5 samples, shared by the product tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from atmorep_core.data.ingest_plan import IngestOptions
from atmorep_core.data.prepare import prepare
from tests.helpers import run_cli, shared_file

ENSEMBLE = "era5/era5-levels-members.grib"  # global 3 deg, 12-hourly, 2017-01-01/02
T2M = "era5/era5-t2m-uk-2019-03-01to24.grib"  # UK 0.25 deg, hourly, 2019-03-01..24


@pytest.fixture(scope="session")
def global_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("global") / "ensemble-mean.zarr"
    prepare([shared_file(ENSEMBLE)], path, IngestOptions(member="mean"))
    return path


def train_briefly(folder: Path, store: Path, model: dict[str, Any], **training: Any) -> Path:
    """A real checkpoint of `model` trained for a few steps; returns the run folder."""
    recipe = {
        "model": model,
        "data": {"store": str(store)},
        "training": {
            "steps": 2, "batch_size": 2, "samples_per_epoch": 16, "warmup_steps": 1,
            "checkpoint_every": 100, "validate_every": 100,
            "masking": {"fields": {f["name"]: {"kind": "forecast"} for f in model["fields"]}},
            **training,
        },
    }  # fmt: skip
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = run_cli("train", str(path), "--run-dir", str(folder / "run"), "--json")
    assert result.returncode == 0, result.stderr
    return folder / "run"


GLOBAL_FIELD = {
    "levels": [500, 850], "token_count": [3, 4, 8], "token_size": [1, 5, 5], "embed_dim": 16,
    "num_heads": 2, "encoder_layers": 1, "decoder_layers": 1, "tail_heads": 4,
}  # fmt: skip
GLOBAL_MODEL = {
    "fields": [
        {"name": "temperature", "normalisation": "local", **GLOBAL_FIELD},
        {"name": "geopotential", "normalisation": "global", **GLOBAL_FIELD},
    ]
}


@pytest.fixture(scope="session")
def global_run(tmp_path_factory: pytest.TempPathFactory, global_store: Path) -> Path:
    return train_briefly(tmp_path_factory.mktemp("global-run"), global_store, GLOBAL_MODEL)


T2M_MODEL = yaml.safe_load(
    (Path(__file__).parent.parent / "recipes" / "t2m-tiny.yaml").read_text()
)["model"]


@pytest.fixture(scope="session")
def t2m_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("t2m") / "t2m.zarr"
    prepare([shared_file(T2M)], path)
    return path


@pytest.fixture(scope="session")
def t2m_run(tmp_path_factory: pytest.TempPathFactory, t2m_store: Path) -> Path:
    """The skill recipe's model trained for 300 steps on 1-19 March (about 30 s)."""
    return train_briefly(
        tmp_path_factory.mktemp("t2m-run"), t2m_store, T2M_MODEL, steps=300, batch_size=16,
        learning_rate=0.002, warmup_steps=30, samples_per_epoch=4096,
        loss={"losses": {"mse_ensemble": 1.0, "crps_fair": 4.0}},
    )  # fmt: skip
