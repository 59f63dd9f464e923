"""The multiformer keeps the model contract: shapes, masking, alpha, coupling, gradients, counts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from atmorep_core.data.sampler import SamplerConfig
from atmorep_core.errors import ConfigError
from atmorep_core.model import attention
from atmorep_core.model.config import ModelConfig, Recipe
from atmorep_core.model.io import FieldInput, FieldOutput
from atmorep_core.model.multiformer import Multiformer, count_parameters

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
ROOT = RECIPES.parent


def tiny_recipe() -> dict[str, Any]:
    return yaml.safe_load((RECIPES / "tiny.yaml").read_text())


def tiny_config(**changes: Any) -> ModelConfig:
    recipe = tiny_recipe()
    for field in recipe["model"]["fields"]:
        field.update(changes)
    return Recipe.from_dict(recipe).model


def make_model(config: ModelConfig, seed: int = 0) -> Multiformer:
    torch.manual_seed(seed)
    return Multiformer(config).eval()


def field_input(field: Any, generator: torch.Generator, batch: int = 2) -> FieldInput:
    """Random tokens over a 0.25-degree neighbourhood near 45 N, half of them masked."""
    levels, (nt, ny, nx), size = len(field.levels), field.token_count, field.token_size
    grid = (batch, levels, nt, ny, nx)
    alpha = torch.zeros(*grid, 7)
    alpha[..., 0] = 2020.0
    alpha[..., 1] = 172.0
    alpha[..., 2] = (torch.arange(nt) * size[0]).float().view(nt, 1, 1)
    alpha[..., 3] = torch.tensor(field.levels, dtype=torch.float32).view(levels, 1, 1, 1)
    alpha[..., 4] = (45.0 + torch.arange(ny) * size[1] * 0.25).view(ny, 1)
    alpha[..., 5] = 10.0 + torch.arange(nx) * size[2] * 0.25
    alpha[..., 6] = 0.25
    n = levels * nt * ny * nx
    masked = torch.rand(batch, n, generator=generator) < 0.5
    masked[:, :2] = True  # every sample hides tokens 0 and 1 (asked for below)
    masked[:, 2] = False  # and shows token 2
    targets = torch.stack([row.nonzero().squeeze(1)[:4].flip(0) for row in masked])  # (B, 4)
    tokens = torch.randn(*grid, *size, generator=generator)
    return FieldInput(tokens, alpha, masked, targets)


def inputs_for(config: ModelConfig, seed: int = 1) -> dict[str, FieldInput]:
    generator = torch.Generator().manual_seed(seed)
    return {f.name: field_input(f, generator) for f in config.fields}


def replace(field: FieldInput, **changes: torch.Tensor) -> FieldInput:
    parts = {k: getattr(field, k) for k in ("tokens", "alpha", "masked", "target_index")}
    return FieldInput(**(parts | changes))


def test_shapes_follow_each_fields_layout() -> None:
    config = tiny_config()
    inputs = inputs_for(config)
    outputs = make_model(config)(inputs)
    for field in config.fields:
        out = outputs[field.name]
        assert isinstance(out, FieldOutput)
        assert out.ensemble.shape == (2, 4, field.tail_heads, field.token_points)
    assert outputs["temperature"].ensemble.shape[-1] != outputs["velocity_u"].ensemble.shape[-1]


def test_only_targets_come_out_in_the_order_asked() -> None:
    config = tiny_config()
    model, inputs = make_model(config), inputs_for(config)
    full = model(inputs)["temperature"].ensemble  # (B, 4, E, P)
    field = inputs["temperature"]
    picked = field.target_index[:, [2, 0]]
    one = model({**inputs, "temperature": replace(field, target_index=picked)})
    torch.testing.assert_close(one["temperature"].ensemble, full[:, [2, 0]])


def test_masked_contents_do_not_matter_and_visible_ones_do() -> None:
    config = tiny_config()
    model, inputs = make_model(config), inputs_for(config)
    field = inputs["temperature"]
    before = model(inputs)["temperature"].ensemble
    hidden = field.tokens.clone()
    hidden.view(2, -1, field.token_points)[:, 0] = float("nan")  # token 0 is masked
    after = model({**inputs, "temperature": replace(field, tokens=hidden)})["temperature"]
    assert torch.equal(after.ensemble, before)
    shown = field.tokens.clone()
    shown.view(2, -1, field.token_points)[:, 2] += 1.0  # token 2 is visible
    after = model({**inputs, "temperature": replace(field, tokens=shown)})["temperature"]
    assert not torch.allclose(after.ensemble, before)


def test_alpha_drives_the_output() -> None:
    config = tiny_config()
    model, inputs = make_model(config), inputs_for(config)
    field = inputs["velocity_u"]
    before = model(inputs)["velocity_u"].ensemble
    assert torch.equal(model(inputs)["velocity_u"].ensemble, before)  # eval: deterministic
    warmer = field.alpha.clone()
    warmer[..., 0] = 2050.0  # a counterfactual year
    after = model({**inputs, "velocity_u": replace(field, alpha=warmer)})["velocity_u"]
    assert (after.ensemble - before).abs().max() > 1e-4


@pytest.mark.parametrize("coupled", [True, False])
def test_cross_attention_couples_fields(coupled: bool) -> None:
    config = tiny_config() if coupled else tiny_config(couples_with=[])
    model, inputs = make_model(config), inputs_for(config)
    before = model(inputs)["velocity_u"].ensemble
    field = inputs["temperature"]
    shown = field.tokens.clone()
    shown.view(2, -1, field.token_points)[:, 2] += 1.0
    after = model({**inputs, "temperature": replace(field, tokens=shown)})["velocity_u"]
    assert torch.equal(after.ensemble, before) is not coupled


def loss_and_grads(model: Multiformer, inputs: dict[str, FieldInput]) -> tuple[float, dict]:
    model.zero_grad()
    outputs = model(inputs)
    loss = sum(out.ensemble.square().mean() for out in outputs.values())
    assert isinstance(loss, torch.Tensor)
    loss.backward()
    return loss.item(), {k: p.grad for k, p in model.named_parameters()}


def test_gradients_reach_every_parameter() -> None:
    config = tiny_config()
    model = make_model(config).train()
    _, grads = loss_and_grads(model, inputs_for(config))
    missing = [k for k, g in grads.items() if g is None or not g.abs().sum() > 0]
    assert not missing


def checkpointed(config: ModelConfig, mode: str) -> ModelConfig:
    return ModelConfig.model_validate(config.model_dump() | {"activation_checkpointing": mode})


@pytest.mark.parametrize("mode", ["mlp", "block"])
def test_activation_checkpointing_changes_nothing_but_memory(mode: str) -> None:
    # Dropout on: the recomputation must replay the forward pass's random masks.
    plain = tiny_config(dropout=0.1)
    inputs = inputs_for(plain)
    loss_a, grads_a = loss_and_grads(make_model(plain).train(), inputs)
    loss_b, grads_b = loss_and_grads(make_model(checkpointed(plain, mode)).train(), inputs)
    assert loss_a == pytest.approx(loss_b, rel=1e-6)
    for key, grad in grads_a.items():
        torch.testing.assert_close(grads_b[key], grad, rtol=1e-5, atol=1e-7)


def saved_bytes(config: ModelConfig) -> int:
    """Bytes of the distinct tensors a forward pass keeps for the backward pass."""
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    model, inputs = make_model(config).train(), inputs_for(config)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(inputs)
    return sum(storages.values())


def test_activation_checkpointing_keeps_less_and_less() -> None:
    plain = tiny_config()
    none, mlp, block = (saved_bytes(checkpointed(plain, m)) for m in ("none", "mlp", "block"))
    assert block < mlp < none


def test_activation_checkpointing_is_skipped_without_gradients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[object] = []
    original = attention.checkpoint

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(attention, "checkpoint", counted)
    config = checkpointed(tiny_config(), "mlp")
    model, inputs = make_model(config), inputs_for(config)
    with torch.no_grad():
        outputs = model(inputs)
    assert not calls
    torch.testing.assert_close(
        outputs["temperature"].ensemble, make_model(tiny_config())(inputs)["temperature"].ensemble
    )
    model(inputs)
    blocks = sum(f.encoder_layers + f.decoder_layers for f in config.fields)
    assert len(calls) == blocks


def test_meta_count_equals_a_real_instance() -> None:
    config = tiny_config()
    model = make_model(config)
    counts = count_parameters(config)
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    for name in config.names:
        assert counts[name] == sum(p.numel() for p in model.fields[name].parameters())


def test_the_standard_preset_has_three_and_a_half_billion_parameters() -> None:
    recipe = Recipe.from_dict(yaml.safe_load((RECIPES / "atmorep-3.5b.yaml").read_text()))
    total = count_parameters(recipe.model)["total"]
    assert 0.9 * 3.5e9 <= total <= 1.1 * 3.5e9
    widths = {f.name: f.embed_dim for f in recipe.model.fields}
    assert max(widths.values()) == 2048
    assert {f.encoder_layers + f.decoder_layers for f in recipe.model.fields} == {20}


@pytest.mark.parametrize("name", ["tiny", "base", "bench-single", "atmorep-3.5b"])
def test_recipes_feed_the_sampler_too(name: str) -> None:
    recipe = Recipe.from_dict(yaml.safe_load((RECIPES / f"{name}.yaml").read_text()))
    sampler = SamplerConfig.from_dict(recipe.model.sampler_section())
    assert [f.name for f in sampler.fields] == list(recipe.model.names)


def test_field_state_round_trip_and_assembly() -> None:
    config = tiny_config()
    source, target = make_model(config, seed=0), make_model(config, seed=1)
    inputs = inputs_for(config)
    target.load_field_state_dict("temperature", source.field_state_dict("temperature"))
    target.load_field_state_dict("velocity_u", source.field_state_dict("velocity_u"))
    torch.testing.assert_close(target(inputs)["temperature"].ensemble,
                               source(inputs)["temperature"].ensemble)  # fmt: skip
    # A field pre-trained alone loads into the coupled model (its couplings start fresh).
    alone = Recipe.from_dict({"model": {"fields": [tiny_recipe()["model"]["fields"][0]]}}).model
    single = make_model(alone, seed=2)
    target.load_field_state_dict("temperature", single.field_state_dict("temperature"))
    embedding = target.fields["temperature"].embedding.values.weight
    assert torch.equal(embedding, single.fields["temperature"].embedding.values.weight)


def test_field_state_width_mismatch_is_named() -> None:
    narrow = make_model(tiny_config())
    wide = make_model(tiny_config(embed_dim=128))
    with pytest.raises(ConfigError, match=r"model\.fields\.temperature\.embed_dim"):
        narrow.load_field_state_dict("temperature", wide.field_state_dict("temperature"))


def test_a_missing_field_is_named() -> None:
    config = tiny_config()
    inputs = inputs_for(config)
    del inputs["velocity_u"]
    with pytest.raises(ConfigError, match="velocity_u"):
        make_model(config)(inputs)


def test_a_misspelt_key_is_named() -> None:
    recipe = tiny_recipe()
    recipe["model"]["fields"][0]["embed_dimm"] = recipe["model"]["fields"][0].pop("embed_dim")
    with pytest.raises(ConfigError, match=r"^model\.fields\.0\.embed_dimm: "):
        Recipe.from_dict(recipe)


def test_a_bad_coupling_is_named() -> None:
    recipe = tiny_recipe()
    recipe["model"]["fields"][1]["couples_with"] = ["vorticity"]
    with pytest.raises(ConfigError, match=r"^model\.fields\.1\.couples_with: 'vorticity'"):
        Recipe.from_dict(recipe)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "atmorep_cli", "model", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_cli_prints_the_counts() -> None:
    done = run_cli(str(RECIPES / "tiny.yaml"), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    counts = count_parameters(tiny_config())
    assert summary["total_parameters"] == counts["total"]
    assert {f["name"]: f["parameters"] for f in summary["fields"]} == {
        name: counts[name] for name in ("temperature", "velocity_u")
    }


def test_cli_names_a_misspelt_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((RECIPES / "tiny.yaml").read_text().replace("num_heads:", "num_haeds:", 1))
    done = run_cli(str(bad))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "model.fields.0.num_haeds" in lines[0]
