"""Validation: scores of the model on held-back times, per masking strategy and field.

Batches and masks are fixed by the seed, so successive validations of a run (and of two runs)
score the same questions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from atmorep_core.data.batch import collate
from atmorep_core.data.dataset import IndexedNeighbourhoods
from atmorep_core.model.io import FieldInput, FieldOutput
from atmorep_core.model.multiformer import Multiformer
from atmorep_core.questions.masking import MaskingConfig, mask_batch
from atmorep_core.training.losses import LossConfig, combined_loss


def move(
    inputs: Mapping[str, FieldInput], targets: Mapping[str, torch.Tensor], device: torch.device
) -> tuple[dict[str, FieldInput], dict[str, torch.Tensor]]:
    """Inputs and targets on the model's device (masking itself runs on the CPU)."""
    moved = {
        name: FieldInput(
            f.tokens.to(device), f.alpha.to(device), f.masked.to(device), f.target_index.to(device)
        )
        for name, f in inputs.items()
    }
    return moved, {name: t.to(device) for name, t in targets.items()}


@torch.no_grad()
def validate(
    model: Multiformer,
    data: IndexedNeighbourhoods,
    strategies: Mapping[str, MaskingConfig],
    loss: LossConfig,
    batches: int,
    batch_size: int,
    seed: int,
    device: torch.device,
) -> list[dict[str, Any]]:
    """One row per (strategy, field): mean losses, RMSE of the ensemble mean and mean spread,
    all in normalised units, over `batches` fixed batches.

    A mixture strategy draws one of its choices per batch, so its rows would mix them: the
    trainer passes `masking.split_mixtures(...)`, which scores each choice apart."""
    was_training = model.training
    model.eval()
    rows = []
    for number, (name, masking) in enumerate(strategies.items()):
        sums: dict[str, dict[str, float]] = {}
        for b in range(batches):
            batch = collate([data[b * batch_size + i] for i in range(batch_size)])
            generator = torch.Generator().manual_seed(seed * 7919 + number * 104729 + b)
            inputs, targets = move(*mask_batch(batch, masking, generator), device)
            outputs = model(inputs)
            breakdown = combined_loss(outputs, targets, loss)
            for field, output in outputs.items():
                scores = _scores(output, targets[field])
                scores |= {f"loss_{k}": float(v) for k, v in breakdown.components[field].items()}
                total = sums.setdefault(field, {})
                for key, value in scores.items():
                    total[key] = total.get(key, 0.0) + value / batches
        rows += [{"strategy": name, "field": field, **scores} for field, scores in sums.items()]
    model.train(was_training)
    return rows


def _scores(output: FieldOutput, target: torch.Tensor) -> dict[str, float]:
    error = output.mean - target  # (B, M, P)
    return {
        "rmse": float(error.square().mean().sqrt()),
        "spread": float(output.std.mean()),
    }
