"""The shipped recipes validate, and a typo in one is rejected by name."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from atmorep_core.data.sampler import SamplerConfig
from atmorep_core.errors import ConfigError

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def test_seed_sampler_recipe_matches_the_seed() -> None:
    config = SamplerConfig.from_dict(yaml.safe_load((RECIPES / "sampler-seed.yaml").read_text()))
    extents = {field.name: field.extent for field in config.fields}
    assert set(extents.values()) == {(36, 54, 108)}
    assert len(extents) == 8
    temperature = next(f for f in config.fields if f.name == "temperature")
    assert temperature.token_count == (12, 2, 4) and temperature.token_size == (3, 27, 27)


def test_a_misspelt_key_is_named() -> None:
    recipe = yaml.safe_load((RECIPES / "sampler-seed.yaml").read_text())
    recipe["fields"][0]["token_cuont"] = recipe["fields"][0].pop("token_count")
    with pytest.raises(ConfigError, match=r"sampler\.fields\.0\.token_cuont"):
        SamplerConfig.from_dict(recipe)


def test_training_recipes_validate() -> None:
    from atmorep_core.training import recipe

    demo = recipe.load(RECIPES / "demo.yaml")
    assert demo.model.names == ("temperature", "velocity_u") and demo.training.steps == 300
    assert set(demo.validation) == {"bert", "forecast"}
    bench = recipe.load(RECIPES / "bench-single.yaml", ["data.store=somewhere.zarr"])
    assert bench.training.batch_size == 2 and bench.loss.losses == {"mse_ensemble": 1, "stats": 1}
    with pytest.raises(ConfigError, match=r"--set model\.fields\.9\.embed_dim"):
        recipe.load(RECIPES / "demo.yaml", ["model.fields.9.embed_dim=8"])
