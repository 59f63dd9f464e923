"""Losses against independent references: scoringrules, numerical integration, hand sums."""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable

import numpy as np
import pytest
import scoringrules as sr
import torch
from scipy import integrate, stats

from atmorep_core.errors import ConfigError
from atmorep_core.model.io import FieldOutput
from atmorep_core.training.losses import (
    LOSSES,
    SPREAD_EPS,
    LossConfig,
    combined_loss,
    fair_crps,
    gaussian_crps,
)


def _random(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _crps_integral(
    cdf: Callable[[float], float], y: float, lo: float, hi: float, breaks: list[float]
) -> float:
    """int (F(x) - 1{x >= y})^2 dx over [lo, hi], split where the integrand jumps."""
    points = sorted({lo, hi, y, *breaks})
    total = 0.0
    for a, b in itertools.pairwise(points):
        step = 1.0 if a >= y else 0.0  # the Heaviside is constant on (a, b)
        value, _ = integrate.quad(lambda x, h=step: (cdf(x) - h) ** 2, a, b, limit=200)
        total += value
    return total


# --- Gaussian CRPS ----------------------------------------------------------------------------


def test_gaussian_crps_matches_scoringrules_and_integration() -> None:
    y, mu = _random((40,), 1), _random((40,), 2)
    sigma = 0.2 + _random((40,), 3).abs()
    ours = gaussian_crps(y, mu, sigma).numpy()
    reference = sr.crps_normal(y.numpy(), mu.numpy(), sigma.numpy())
    assert np.max(np.abs(ours - reference)) < 1e-12
    for i in range(6):
        m, s, obs = float(mu[i]), float(sigma[i]), float(y[i])
        cdf = functools.partial(stats.norm.cdf, loc=m, scale=s)
        integral = _crps_integral(cdf, obs, m - 12 * s, m + 12 * s, [])
        assert abs(ours[i] - integral) < 1e-8


def test_gaussian_crps_known_value() -> None:
    # CRPS of N(0, 1) at its mean is 2 phi(0) - 1/sqrt(pi) = (sqrt(2) - 1) / sqrt(pi).
    value = gaussian_crps(torch.tensor(0.0), torch.tensor(0.0), torch.tensor(1.0))
    assert float(value) == pytest.approx((math.sqrt(2.0) - 1.0) / math.sqrt(math.pi), abs=1e-7)


# --- fair ensemble CRPS -----------------------------------------------------------------------


def test_fair_crps_matches_scoringrules() -> None:
    members, y = _random((5, 7, 16), 4), _random((5, 7), 5)
    ours = fair_crps(members, y).numpy()
    reference = sr.crps_ensemble(y.numpy(), members.numpy(), m_axis=-1, estimator="fair")
    assert np.max(np.abs(ours - reference)) < 1e-12


def test_fair_crps_matches_integral_with_unbiased_correction() -> None:
    # Fair CRPS = int (F_m - H)^2 - F_m (1 - F_m) / (m - 1) dx, F_m the empirical CDF (Ferro 2014).
    members, y = _random((4, 5), 6), _random((4,), 7)
    ours = fair_crps(members, y).numpy()
    for i, (row, obs) in enumerate(zip(members.numpy(), y.numpy(), strict=True)):
        m = len(row)

        def cdf(x: float, row: np.ndarray = row) -> float:
            return float(np.mean(row <= x))

        lo, hi = min(row.min(), obs) - 1.0, max(row.max(), obs) + 1.0
        crps = _crps_integral(cdf, float(obs), lo, hi, list(row))
        points = sorted({lo, hi, *row})
        correction = sum(
            integrate.quad(lambda x: cdf(x) * (1 - cdf(x)), a, b)[0]
            for a, b in itertools.pairwise(points)
        )
        expected = crps - correction / (m - 1)
        assert abs(ours[i] - expected) < 1e-9


def test_fair_crps_gradient_matches_finite_differences() -> None:
    members = _random((3, 6), 8).requires_grad_()  # distinct members: the sort order is stable
    y = _random((3,), 9)
    assert torch.autograd.gradcheck(lambda x: fair_crps(x, y), (members,), eps=1e-6, atol=1e-8)


def test_fair_crps_gradient_is_the_analytic_one() -> None:
    members = torch.tensor([[-1.0, 0.2, 0.5, 3.0]], dtype=torch.float64, requires_grad=True)
    fair_crps(members, torch.tensor([0.3], dtype=torch.float64)).sum().backward()
    assert members.grad is not None
    m, rank = 4, torch.arange(1.0, 5.0, dtype=torch.float64)  # members are already sorted
    expected = torch.sign(members.detach() - 0.3) / m - (2 * rank - m - 1) / (m * (m - 1))
    # The extreme members on the far side of y get exactly 0: skill and spread terms cancel.
    assert torch.allclose(members.grad, expected, atol=1e-12)
    assert members.grad[0].tolist() == pytest.approx([0.0, -1 / 6, 1 / 6, 0.0], abs=1e-12)


def test_fair_crps_gradient_reaches_every_member_through_the_spread_term() -> None:
    ensemble = _random((2, 3, 6, 40), 18).requires_grad_()  # (B, M, E, P)
    target = _random((2, 3, 40), 19)
    LOSSES["crps_fair"](ensemble, target).backward()
    assert ensemble.grad is not None
    skill_only = (torch.sign(ensemble.detach() - target.unsqueeze(2)) / 6).div(2 * 3 * 40)
    per_member = ensemble.grad.abs().sum(dim=(0, 1, 3))  # (E,)
    assert bool((per_member > 0).all())
    # Most elements move; without the spread term the gradient would be the skill term's alone.
    assert float((ensemble.grad != 0).double().mean()) > 0.5
    assert float((ensemble.grad - skill_only).abs().max()) > 1e-4


def test_fair_crps_needs_two_members() -> None:
    with pytest.raises(ValueError, match="at least 2 members"):
        fair_crps(torch.zeros(3, 1), torch.zeros(3))


# --- registered losses on (B, M, E, P) ----------------------------------------------------------


def test_statistical_loss_by_hand() -> None:
    ensemble = torch.tensor([1.0, 2.0, 4.0, 0.0, 0.0, 3.0], dtype=torch.float64).reshape(1, 1, 3, 2)
    target = torch.tensor([[[2.0, 1.0]]], dtype=torch.float64)
    # Point 0: members 1, 4, 0 -> mean 5/3, var ((2/3)^2 + (7/3)^2 + (5/3)^2) / 2 = 13/3.
    # Point 1: members 2, 0, 3 -> mean 5/3, var ((1/3)^2 + (5/3)^2 + (4/3)^2) / 2 = 7/3.
    means, variances, ys = [5 / 3, 5 / 3], [13 / 3, 7 / 3], [2.0, 1.0]
    miss, root = 0.0, 0.0
    for mu, var, y in zip(means, variances, ys, strict=True):
        sigma = math.sqrt(var + SPREAD_EPS)
        miss += (1.0 - math.exp(-((y - mu) ** 2) / (2 * sigma**2))) ** 2 / 2
        root += math.sqrt(sigma) / 2
    assert float(LOSSES["stats"](ensemble, target)) == pytest.approx(miss + root, abs=1e-12)


def test_mse_losses_by_hand() -> None:
    ensemble = torch.tensor([1.0, 3.0], dtype=torch.float64).reshape(1, 1, 2, 1)
    target = torch.tensor([[[0.0]]], dtype=torch.float64)
    assert float(LOSSES["mse"](ensemble, target)) == pytest.approx(4.0)  # (2 - 0)^2
    assert float(LOSSES["mse_ensemble"](ensemble, target)) == pytest.approx(5.0)  # (1 + 9) / 2


def test_crps_losses_agree_with_scoringrules_on_the_model_layout() -> None:
    ensemble, target = _random((2, 3, 8, 5), 10), _random((2, 3, 5), 11)
    fair = sr.crps_ensemble(target.numpy(), ensemble.numpy(), m_axis=2, estimator="fair")
    assert float(LOSSES["crps_fair"](ensemble, target)) == pytest.approx(fair.mean(), abs=1e-12)
    mu, sigma = ensemble.mean(dim=2).numpy(), ensemble.std(dim=2).numpy()
    normal = sr.crps_normal(target.numpy(), mu, sigma)
    assert float(LOSSES["crps_gaussian"](ensemble, target)) == pytest.approx(
        normal.mean(), abs=1e-7
    )


def test_combined_loss_weighs_fields_and_losses() -> None:
    outputs = {
        "t": FieldOutput(_random((2, 3, 4, 5), 12)),
        "q": FieldOutput(_random((2, 3, 4, 5), 13)),
    }
    targets = {"t": _random((2, 3, 5), 14), "q": _random((2, 3, 5), 15)}
    config = LossConfig.from_dict(
        {"losses": {"mse_ensemble": 1.0, "crps_fair": 0.5}, "field_weights": {"q": 3.0}}
    )
    result = combined_loss(outputs, targets, config)
    parts = {
        f: {n: LOSSES[n](outputs[f].ensemble, targets[f]) for n in ("mse_ensemble", "crps_fair")}
        for f in outputs
    }
    per_field = {f: parts[f]["mse_ensemble"] + 0.5 * parts[f]["crps_fair"] for f in outputs}
    expected = (per_field["t"] + 3.0 * per_field["q"]) / 4.0
    assert float(result.total) == pytest.approx(float(expected), abs=1e-12)
    assert float(result.components["q"]["crps_fair"]) == pytest.approx(
        float(parts["q"]["crps_fair"])
    )
    assert not result.components["t"]["mse_ensemble"].requires_grad


def test_combined_loss_trains_the_spread() -> None:
    ensemble = (0.01 * _random((1, 2, 4, 3), 16)).requires_grad_()  # far too narrow
    targets = {"t": _random((1, 2, 3), 17)}
    config = LossConfig(losses={"crps_fair": 1.0})
    combined_loss({"t": FieldOutput(ensemble)}, targets, config).total.backward()
    assert ensemble.grad is not None
    centred = ensemble.detach() - ensemble.detach().mean(dim=2, keepdim=True)
    # Moving along -grad widens the ensemble: the gradient points against the spread direction.
    assert float((ensemble.grad * centred).sum()) < 0.0


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"losses": {"msee": 1.0}}, "loss.losses"),
        ({"losses": {"mse": -1.0}}, "loss.losses.mse"),
        ({"loss": {"mse": 1.0}}, "loss.loss"),
    ],
)
def test_bad_loss_config_names_the_key(data: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{key}:"):
        LossConfig.from_dict(data)


def test_field_weight_for_an_unknown_field_names_the_key() -> None:
    config = LossConfig(losses={"mse": 1.0}, field_weights={"tt": 2.0})
    outputs = {"t": FieldOutput(torch.zeros(1, 1, 2, 1))}
    with pytest.raises(ConfigError, match=r"loss\.field_weights\.tt"):
        combined_loss(outputs, {"t": torch.zeros(1, 1, 1)}, config)
