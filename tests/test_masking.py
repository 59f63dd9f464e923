"""Masking strategies: ratios, distortions, targets, synchronisation, determinism, config errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from atmorep_core.data.batch import Batch, SampleMeta
from atmorep_core.errors import ConfigError
from atmorep_core.model.io import FieldInput
from atmorep_core.questions.masking import (
    MaskingConfig,
    apply_plan,
    coarsen_tokens,
    mask_batch,
    split_mixtures,
)
from atmorep_core.questions.strategies import (
    BertStrategy,
    Distortion,
    ForecastStrategy,
    IdentityStrategy,
    MixtureStrategy,
    TokenGrid,
    TokenPlan,
)

B = 3
# u and v share a token grid; t covers the same points with other tokens (as temperature does).
GRIDS = {
    "u": (2, (4, 3, 4), (2, 6, 6)),
    "v": (2, (4, 3, 4), (2, 6, 6)),
    "t": (2, (4, 1, 2), (2, 18, 12)),
}


def _batch(seed: int = 0, fields: tuple[str, ...] = ("u", "v", "t")) -> Batch:
    generator = torch.Generator().manual_seed(seed)
    tokens, alpha = {}, {}
    for name in fields:
        levels, counts, size = GRIDS[name]
        tokens[name] = 1.0 + 2.0 * torch.randn(B, levels, *counts, *size, generator=generator)
        alpha[name] = torch.rand(B, levels, *counts, 7, generator=generator)
    meta = SampleMeta(np.datetime64("2020-01-01T00"), 0, 0, 0, fields, ((96, 137),) * len(fields))
    return Batch(tokens, alpha, (meta,) * B)


def _config(
    strategy: dict[str, object], synced: bool = False, fields: str = "uvt"
) -> MaskingConfig:
    return MaskingConfig.from_dict({"fields": dict.fromkeys(fields, strategy), "synced": synced})


def _mixture(*choices: tuple[float, dict[str, object]]) -> dict[str, object]:
    return {"kind": "mixture", "choices": [{"weight": w, "strategy": s} for w, s in choices]}


BERT = {"kind": "BERT", "max_ratio": 0.5}
FORECAST = {"kind": "forecast", "time_tokens": 1}


def _flat(tokens: torch.Tensor) -> torch.Tensor:  # (B, N, P)
    return tokens.flatten(1, 4).flatten(2)


def _gather(tokens: torch.Tensor, index: torch.Tensor) -> torch.Tensor:  # (B, M, P)
    flat = _flat(tokens)
    return torch.stack([flat[b, index[b]] for b in range(flat.shape[0])])


# --- BERT statistics ----------------------------------------------------------------------------


def test_bert_ratio_and_split_hit_their_targets_over_many_draws() -> None:
    strategy = BertStrategy(
        max_ratio=0.6, mask_fraction=0.5, noise_fraction=0.2, coarsen_fraction=0.2
    )
    grid = TokenGrid(*GRIDS["u"])
    generator = torch.Generator().manual_seed(7)
    plans = [strategy.plan(grid, B, generator) for _ in range(600)]
    ratios = np.array([p.target_index.shape[1] / grid.num_tokens for p in plans])
    # ratio ~ U(0, 0.6): mean 0.3 (+ at most 1/N from the ceiling), std 0.17 -> s.e. 0.007.
    assert abs(ratios.mean() - 0.3) < 0.025
    assert ratios.min() < 0.05 and 0.55 < ratios.max() <= np.ceil(0.6 * 96) / 96
    kinds = torch.cat([p.distortion.flatten() for p in plans])  # ~ 26,000 targets
    shares = [float((kinds == k).double().mean()) for k in Distortion]
    expected = {Distortion.KEEP: 0.1, Distortion.MASK: 0.5, Distortion.NOISE: 0.2}
    for kind, share in expected.items():
        assert abs(shares[kind] - share) < 0.015, (kind, shares)
    assert abs(shares[Distortion.COARSEN] - 0.2) < 0.015
    for plan in plans[:20]:  # distinct, sorted positions per sample
        assert bool((plan.target_index.diff(dim=1) > 0).all())


def test_bert_targets_are_the_undistorted_tokens_and_others_are_untouched() -> None:
    batch = _batch()
    original = {k: v.clone() for k, v in batch.tokens.items()}
    config = _config({"kind": "BERT", "max_ratio": 0.75})
    inputs, targets = mask_batch(batch, config, torch.Generator().manual_seed(3))
    for name, field_input in inputs.items():
        assert torch.equal(batch.tokens[name], original[name])  # the batch is not modified
        index = field_input.target_index
        assert targets[name].shape == (B, index.shape[1], field_input.token_points)
        assert torch.equal(targets[name], _gather(original[name], index))
        untouched = torch.ones(_flat(original[name]).shape[:2], dtype=torch.bool)  # (B, N)
        untouched.scatter_(1, index, False)
        assert torch.equal(_flat(field_input.tokens)[untouched], _flat(original[name])[untouched])
        assert not bool((field_input.masked & untouched).any())  # only targets are masked
        assert torch.equal(field_input.alpha, batch.alpha[name])


# --- each distortion, from an explicit plan -------------------------------------------------------


def _explicit_plan() -> TokenPlan:
    target_index = torch.tensor([[1, 5, 9, 20], [0, 2, 30, 95], [3, 4, 50, 60]])  # (B, M)
    kinds = [Distortion.MASK, Distortion.NOISE, Distortion.COARSEN, Distortion.KEEP]
    distortion = torch.tensor([kinds, kinds[::-1], kinds[1:] + kinds[:1]])  # (B, M)
    return TokenPlan(target_index, distortion, noise_strength=0.5, coarsen_factor=(1, 3, 2))


def test_each_distortion_does_what_it_says() -> None:
    tokens, alpha = _batch().tokens["u"], _batch().alpha["u"]
    plan = _explicit_plan()
    field_input, targets = apply_plan(tokens, alpha, plan, torch.Generator().manual_seed(1))
    before = tokens.flatten(1, 4)  # (B, N, t, y, x)
    after = field_input.tokens.flatten(1, 4)
    for b in range(B):
        for n, kind in zip(plan.target_index[b].tolist(), plan.distortion[b].tolist(), strict=True):
            assert bool(field_input.masked[b, n]) == (kind == Distortion.MASK)
            if kind == Distortion.MASK:
                assert bool((after[b, n] == 0).all())
            elif kind == Distortion.KEEP:
                assert torch.equal(after[b, n], before[b, n])
            elif kind == Distortion.COARSEN:
                # Every 1 x 3 x 2 block is replaced by its own mean, computed here directly.
                block = before[b, n, :, 3:6, 2:4]
                assert torch.allclose(
                    after[b, n, :, 3:6, 2:4], block.mean(dim=(1, 2), keepdim=True).expand_as(block)
                )
                assert not torch.equal(after[b, n], before[b, n])
            else:
                assert not torch.equal(after[b, n], before[b, n])
    assert int(field_input.masked.sum()) == 3
    assert torch.equal(targets, _gather(tokens, plan.target_index))


def test_coarsened_token_equals_block_means_repeated() -> None:
    token = torch.arange(2 * 6 * 6, dtype=torch.float32).reshape(1, 2, 6, 6)
    coarse = coarsen_tokens(token, (1, 3, 3))
    # Row-major arange: a 3 x 3 block's mean is its centre value.
    for t in range(2):
        for i in range(2):
            for j in range(2):
                centre = token[0, t, 3 * i + 1, 3 * j + 1]
                assert bool((coarse[0, t, 3 * i : 3 * i + 3, 3 * j : 3 * j + 3] == centre).all())
    assert torch.allclose(coarsen_tokens(token, (2, 6, 6)), token.mean().expand_as(token))


def test_noise_strength_is_relative_to_the_field_std() -> None:
    batch = _batch()
    tokens = batch.tokens["u"]
    everything = torch.arange(96).expand(B, 96)  # (B, N)
    plan = TokenPlan(everything, torch.full((B, 96), int(Distortion.NOISE)), noise_strength=0.3)
    field_input, _ = apply_plan(tokens, batch.alpha["u"], plan, torch.Generator().manual_seed(2))
    noise = field_input.tokens - tokens
    assert not bool(field_input.masked.any())
    assert float(noise.std()) == pytest.approx(0.3 * float(tokens.std()), rel=0.02)
    assert float(noise.mean()) == pytest.approx(0.0, abs=0.01)


# --- time-slice strategies and identity -----------------------------------------------------------


def _token_times(name: str) -> torch.Tensor:  # (N,) the time-token index of every token
    levels, (n_t, n_y, n_x), _ = GRIDS[name]
    return torch.arange(n_t).view(1, n_t, 1, 1).expand(levels, n_t, n_y, n_x).flatten()


def test_forecast_masks_exactly_the_last_time_tokens() -> None:
    batch = _batch()
    inputs, targets = mask_batch(
        batch, _config({"kind": "forecast", "time_tokens": 2}), torch.Generator()
    )
    for name, field_input in inputs.items():
        n_t = GRIDS[name][1][0]
        times = _token_times(name)  # (N,)
        expected = torch.nonzero(times >= n_t - 2).flatten()
        assert all(torch.equal(row, expected) for row in field_input.target_index)
        assert torch.equal(field_input.masked, (times >= n_t - 2).expand(B, -1))
        assert bool((_flat(field_input.tokens)[field_input.masked] == 0).all())
        assert torch.equal(targets[name], _gather(batch.tokens[name], field_input.target_index))


@pytest.mark.parametrize(("slices", "expected"), [(None, [2]), ((0, 3), [0, 3]), ((1,), [1])])
def test_interpolation_masks_exactly_the_given_slices(
    slices: tuple[int, ...] | None, expected: list[int]
) -> None:
    config = _config({"kind": "temporal_interpolation", "time_slices": slices})
    inputs, _ = mask_batch(_batch(), config, torch.Generator())
    for name, field_input in inputs.items():
        chosen = torch.isin(_token_times(name), torch.tensor(expected))  # (N,)
        assert torch.equal(field_input.masked, chosen.expand(B, -1))
        assert torch.equal(field_input.target_index[0], torch.nonzero(chosen).flatten())


def test_identity_masks_nothing_and_targets_everything() -> None:
    batch = _batch()
    inputs, targets = mask_batch(batch, _config({"kind": "identity"}), torch.Generator())
    for name, field_input in inputs.items():
        assert not bool(field_input.masked.any())
        assert torch.equal(field_input.tokens, batch.tokens[name])
        assert torch.equal(targets[name], _flat(batch.tokens[name]))


def test_downscaling_shows_every_token_as_block_means_and_targets_it_in_full() -> None:
    batch = _batch(fields=("u", "v"))
    config = _config({"kind": "downscaling", "factor": [1, 3, 3]}, fields="uv")
    inputs, targets = mask_batch(batch, config, torch.Generator())
    for name, field_input in inputs.items():
        tokens = batch.tokens[name]  # (B, L, n_t, n_y, n_x, 2, 6, 6)
        assert not bool(field_input.masked.any())
        assert torch.equal(targets[name], _flat(tokens))
        blocks = tokens.reshape(*tokens.shape[:6], 2, 3, 2, 3).mean(dim=(7, 9), keepdim=True)
        expected = blocks.expand(*tokens.shape[:6], 2, 3, 2, 3).reshape(tokens.shape)
        torch.testing.assert_close(field_input.tokens, expected)
    with pytest.raises(ConfigError, match=r"factor: \(1, 4, 4\) does not divide"):
        wrong = _config({"kind": "downscaling", "factor": [1, 4, 4]}, fields="uv")
        mask_batch(batch, wrong, torch.Generator())


# --- synchronisation and determinism --------------------------------------------------------------


def test_synced_fields_share_positions_on_the_same_grid_and_the_ratio_otherwise() -> None:
    config = _config({"kind": "BERT", "max_ratio": 0.75}, synced=True)
    for seed in range(10):
        inputs, _ = mask_batch(_batch(seed), config, torch.Generator().manual_seed(seed))
        u, v, t = inputs["u"], inputs["v"], inputs["t"]
        assert torch.equal(u.target_index, v.target_index)
        assert torch.equal(u.masked, v.masked)
        # One ratio r for both grids: M = ceil(r N) on each, so the shares differ by < 1 / N.
        share_u, share_t = u.target_index.shape[1] / 96, t.target_index.shape[1] / 16
        assert abs(share_u - share_t) < 1 / 16


def test_independent_fields_draw_their_own_positions() -> None:
    config = _config({"kind": "BERT", "max_ratio": 0.75})
    inputs, _ = mask_batch(_batch(), config, torch.Generator().manual_seed(5))
    u, v = inputs["u"], inputs["v"]
    assert u.target_index.shape != v.target_index.shape or not torch.equal(
        u.target_index, v.target_index
    )


def test_masking_is_deterministic_under_the_generator() -> None:
    config = _config({"kind": "BERT", "max_ratio": 0.75})
    first = mask_batch(_batch(), config, torch.Generator().manual_seed(11))
    again = mask_batch(_batch(), config, torch.Generator().manual_seed(11))
    other = mask_batch(_batch(), config, torch.Generator().manual_seed(12))
    for name in "uvt":
        assert torch.equal(first[0][name].tokens, again[0][name].tokens)
        assert torch.equal(first[0][name].target_index, again[0][name].target_index)
        assert torch.equal(first[1][name], again[1][name])
    assert not torch.equal(first[0]["u"].tokens, other[0]["u"].tokens)


# --- mixtures -------------------------------------------------------------------------------------


def _is_forecast(name: str, field_input: FieldInput) -> bool:
    """Whether the field's targets are exactly its last time tokens, all masked (FORECAST)."""
    last = _token_times(name) == GRIDS[name][1][0] - 1  # (N,)
    return torch.equal(field_input.masked, last.expand(B, -1))


def test_a_mixture_draws_its_choices_in_proportion_to_their_weights() -> None:
    strategy = MixtureStrategy.model_validate(
        _mixture((3, BERT), (1, FORECAST), (2, {"kind": "identity"}))
    )
    grid = TokenGrid(*GRIDS["u"])
    generator = torch.Generator().manual_seed(4)
    draws = 4000
    counts = {"BERT": 0, "forecast": 0, "identity": 0}
    forecast = ForecastStrategy(time_tokens=1).plan(grid, B, generator)
    identity = IdentityStrategy().plan(grid, B, generator)
    for _ in range(draws):
        plan = strategy.plan(grid, B, generator)
        if torch.equal(plan.target_index, identity.target_index):
            counts["identity"] += 1
        elif torch.equal(plan.target_index, forecast.target_index):
            counts["forecast"] += 1
        else:
            counts["BERT"] += 1
    for kind, share in {"BERT": 3 / 6, "forecast": 1 / 6, "identity": 2 / 6}.items():
        sigma = (draws * share * (1 - share)) ** 0.5
        assert abs(counts[kind] - draws * share) < 3 * sigma, counts


def test_a_mixture_is_deterministic_under_the_generator_and_varies_with_it() -> None:
    config = _config(_mixture((1, BERT), (1, FORECAST)))
    chosen = set()
    for seed in range(12):
        first = mask_batch(_batch(), config, torch.Generator().manual_seed(seed))
        again = mask_batch(_batch(), config, torch.Generator().manual_seed(seed))
        for name in "uvt":
            assert torch.equal(first[0][name].tokens, again[0][name].tokens)
            assert torch.equal(first[0][name].target_index, again[0][name].target_index)
            chosen.add(_is_forecast(name, first[0][name]))
    assert chosen == {True, False}


@pytest.mark.parametrize("synced", [True, False])
def test_synced_fields_pick_the_same_choice_of_a_mixture(synced: bool) -> None:
    config = _config(_mixture((1, BERT), (1, FORECAST)), synced=synced)
    agreed = []
    for seed in range(20):
        inputs, _ = mask_batch(_batch(seed), config, torch.Generator().manual_seed(seed))
        picks = {_is_forecast(name, inputs[name]) for name in "uvt"}
        agreed.append(len(picks) == 1)
        if synced and not picks.pop():  # both BERT: in sync as BERT alone is
            assert torch.equal(inputs["u"].target_index, inputs["v"].target_index)
    # Independent fields disagree on 3/4 of the seeds (three fair draws): not all 20 agree.
    assert all(agreed) is synced


def test_split_mixtures_pairs_the_ith_choices_and_keeps_the_rest() -> None:
    mixture = MaskingConfig.from_dict(
        {"fields": {"u": _mixture((3, BERT), (1, FORECAST)), "v": BERT,
                    "t": _mixture((1, {"kind": "identity"}), (1, FORECAST))}}
    )  # fmt: skip
    plain = _config(FORECAST)
    split = split_mixtures({"mix": mixture, "plain": plain})
    assert list(split) == ["mix.0.BERT+identity", "mix.1.forecast", "plain"]
    assert split["plain"] is plain
    first, second = split["mix.0.BERT+identity"].fields, split["mix.1.forecast"].fields
    assert first == {"u": BertStrategy(max_ratio=0.5), "v": BertStrategy(max_ratio=0.5),
                     "t": IdentityStrategy()}  # fmt: skip
    assert second["u"] == second["t"] == ForecastStrategy(time_tokens=1)
    assert second["v"] == BertStrategy(max_ratio=0.5)


def test_split_mixtures_names_a_field_with_another_number_of_choices() -> None:
    config = MaskingConfig.from_dict(
        {"fields": {"u": _mixture((1, BERT), (1, FORECAST)), "v": _mixture((1, BERT))}}
    )
    with pytest.raises(ConfigError, match=r"^masking\.fields\.v\.choices: 1 choices, u has 2"):
        split_mixtures({"mix": config})


# --- configuration errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"fields": {"u": {"kind": "BERT", "max_ration": 0.5}}}, "masking.fields.u.max_ration"),
        ({"fields": {"u": {"kind": "BERT", "max_ratio": 1.5}}}, "masking.fields.u.max_ratio"),
        ({"fields": {"u": {"kind": "BERT", "mask_fraction": 0.95}}}, "masking.fields.u"),
        ({"fields": {"u": {"kind": "bert"}}}, "masking.fields.u"),
        ({"fields": {"u": {"kind": "forecast", "time_tokens": 0}}}, "masking.fields.u.time_tokens"),
        ({"fields": {"u": {"kind": "identity"}}, "sync": True}, "masking.sync"),
        (
            {"fields": {"u": _mixture((3, BERT), (1, {"kind": "forecast", "time_tokens": 0}))}},
            "masking.fields.u.choices.1.strategy.time_tokens",
        ),
        (
            {"fields": {"u": _mixture((1, {"kind": "BERT", "max_ration": 0.5}))}},
            "masking.fields.u.choices.0.strategy.max_ration",
        ),
        ({"fields": {"u": _mixture((0, BERT))}}, "masking.fields.u.choices.0.weight"),
        ({"fields": {"u": _mixture()}}, "masking.fields.u.choices"),
        (
            {"fields": {"u": {"kind": "mixture", "choices": [{"weigth": 1, "strategy": BERT}]}}},
            "masking.fields.u.choices.0.weigth",
        ),
        (  # no mixture of mixtures
            {"fields": {"u": _mixture((1, _mixture((1, BERT))))}},
            "masking.fields.u.choices.0.strategy",
        ),
    ],
)
def test_bad_config_key_raises_config_error_naming_it(data: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{key}:"):
        MaskingConfig.from_dict(data)


@pytest.mark.parametrize(
    ("strategy", "key"),
    [
        ({"kind": "forecast", "time_tokens": 4}, "masking.fields.u.time_tokens"),
        ({"kind": "temporal_interpolation", "time_slices": [4]}, "masking.fields.u.time_slices"),
        ({"kind": "BERT", "coarsen_factor": [1, 4, 4]}, "masking.fields.u.coarsen_factor"),
        # Checked whatever the draw, not only on the steps that pick the choice.
        (
            _mixture((1e9, BERT), (1, {"kind": "forecast", "time_tokens": 4})),
            "masking.fields.u.choices.1.strategy.time_tokens",
        ),
    ],
)
def test_strategy_that_does_not_fit_the_grid_names_its_key(
    strategy: dict[str, object], key: str
) -> None:
    config = _config(strategy, fields="u")
    with pytest.raises(ConfigError, match=rf"^{key}:"):
        mask_batch(_batch(fields=("u",)), config, torch.Generator())


def test_field_without_a_strategy_is_named() -> None:
    with pytest.raises(ConfigError, match="'t'"):
        mask_batch(_batch(), _config({"kind": "identity"}, fields="uv"), torch.Generator())
    with pytest.raises(ConfigError, match=r"masking\.fields\.q"):
        mask_batch(_batch(), _config({"kind": "identity"}, fields="uvtq"), torch.Generator())


def test_forecast_strategy_is_usable_directly() -> None:
    plan = ForecastStrategy(time_tokens=1).plan(TokenGrid(*GRIDS["t"]), 2, torch.Generator())
    assert plan.target_index.tolist() == [[6, 7, 14, 15]] * 2  # levels 0 and 1, last time token
