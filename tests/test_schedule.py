"""The learning-rate schedule at the steps that define it (warm-up 4, total 10, floor 0.1)."""

from __future__ import annotations

import pytest
import torch

from atmorep_core.training.schedule import warmup_cosine, warmup_cosine_factor


@pytest.mark.parametrize(
    ("step", "expected"),
    [(0, 0.25), (3, 1.0), (4, 1.0), (7, 0.55), (10, 0.1), (20, 0.1)],
)
def test_factor_by_hand(step: int, expected: float) -> None:
    assert warmup_cosine_factor(step, 4, 10, 0.1) == pytest.approx(expected)


def test_scheduler_drives_the_optimizer_and_round_trips() -> None:
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([parameter], lr=1e-3)
    scheduler = warmup_cosine(optimizer, 4, 10, 0.1)
    rates = []
    for _ in range(8):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(2.5e-4) and rates[7] == pytest.approx(0.55e-3)
    twin = warmup_cosine(torch.optim.AdamW([parameter], lr=1e-3), 4, 10, 0.1)
    twin.load_state_dict(scheduler.state_dict())
    assert twin.get_last_lr() == scheduler.get_last_lr()
