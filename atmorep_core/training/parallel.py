"""How the model is spread over processes: data parallel (DDP) or fully sharded (FSDP).

DDP keeps a whole copy of the model per process and averages gradients; FSDP shards parameters,
gradients and optimizer state over the processes (each encoder and decoder block, embedding and
tail is its own unit), for presets that do not fit one GPU. Checkpoints always hold full,
unsharded states, so a run can resume with the other kind or another number of processes.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.nn.parallel import DistributedDataParallel

from atmorep_core.model.multiformer import Multiformer
from atmorep_core.training.distributed import Context

Kind = Literal["ddp", "fsdp"]
_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def shards(context: Context, kind: Kind) -> bool:
    """Whether the model's parameters are sharded (so every process must join forward passes and
    state gathering)."""
    return context.distributed and kind == "fsdp"


def shard(model: Multiformer, context: Context, kind: Kind) -> None:
    """Shard the model in place under FSDP (before the optimizer is made); else nothing."""
    if not shards(context, kind):
        return
    mesh = init_device_mesh(context.device.type, (context.world_size,))
    # Units are the modules that are called (FSDP gathers a unit's weights in its forward hook):
    # every block, embedding and tail; the fields' methods that call them are not forwards.
    for name in model.config.names:
        field = model.field(name)
        for unit in [*field.encoder, *field.decoder, field.embedding, field.tail]:
            fully_shard(unit, mesh=mesh)
    fully_shard(model, mesh=mesh)


def wrap(model: nn.Module, context: Context, kind: Kind) -> nn.Module:
    """The module the training step calls: DDP-wrapped when data parallel."""
    if not context.distributed or kind == "fsdp":
        return model
    ids = [context.device.index] if context.device.type == "cuda" else None
    # Unused parameters happen: identity masking leaves the mask token out of the graph.
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)


def full_states(
    model: nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Unsharded model and optimizer states on the CPU (a collective call under FSDP)."""
    weights: dict[str, Any] = get_model_state_dict(model, options=_FULL)
    moments: dict[str, Any] = get_optimizer_state_dict(model, optimizer, options=_FULL)
    return weights, moments


def load_full_states(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    weights: dict[str, Any],
    moments: dict[str, Any] | None,
) -> None:
    """Load unsharded states into a model that may be sharded."""
    set_model_state_dict(model, weights, options=StateDictOptions(full_state_dict=True))
    if moments is not None:
        set_optimizer_state_dict(
            model, optimizer, moments, options=StateDictOptions(full_state_dict=True)
        )
