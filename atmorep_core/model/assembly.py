"""Moving one field's weights between multiformers: pre-train fields alone, then assemble.

A field's weights depend on its architecture (width, heads, depths, token size, tail) but only
its encoder's cross-attention depends on which other fields are in the model. So a state loads
into a field of the same architecture whatever the couplings: cross-attention weights towards
fields the state never saw keep their initialisation, and self-attention keys and values keep
as many of the state's heads as the field now has self heads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from atmorep_core.errors import ConfigError
from atmorep_core.model.config import FieldModelConfig

# What must agree for a field's weights to mean the same thing in another model.
ARCHITECTURE_KEYS = (
    "embed_dim",
    "levels",
    "token_size",
    "num_heads",
    "encoder_layers",
    "decoder_layers",
    "mlp_ratio",
    "tail_heads",
    "qk_norm",
    "decoder_cross_heads",
    "token_embedding",
    "token_info_width",
    "coupling_heads_extra",
    "decoder_num_heads",
    "decoder_reads",
    "layer_norm_affine",
    "attention_bias",
    "mlp_output_gelu",
    "qk_norm_type",
    "decoder_qk_norm",
    "tail_norm",
    "predicted",
)
# Key fragments of weights that exist per coupled field.
_COUPLING_PARTS = (".attention.kv.", ".source_norms.")


@dataclass(frozen=True)
class FieldState:
    """A field's weights (tensors only, safetensors-ready) with the config they belong to."""

    config: FieldModelConfig
    tensors: Mapping[str, torch.Tensor]


def check_compatible(model: FieldModelConfig, state: FieldModelConfig) -> None:
    """ConfigError naming the first architecture key where the state differs from the model."""
    if state.name != model.name:
        raise ConfigError(f"model.fields.{model.name}.name: the state is of field {state.name!r}")
    for key in ARCHITECTURE_KEYS:
        ours, theirs = getattr(model, key), getattr(state, key)
        if ours != theirs:
            raise ConfigError(
                f"model.fields.{model.name}.{key}: the state has {theirs}, the model {ours}"
            )


def merge_field_state(
    own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor], name: str
) -> dict[str, torch.Tensor]:
    """The field's new state dict: `own` with every weight the state holds for it replaced."""
    merged = dict(own)
    for key, value in state.items():
        if key not in own:
            if _is_coupling(key):  # a field the state was coupled with is not in this model
                continue
            raise ConfigError(f"model.fields.{name}: the state has {key!r}, the model does not")
        merged[key] = _fit(own[key], value, key, name)
    missing = [k for k in own if k not in state and not _is_coupling(k)]
    if missing:
        raise ConfigError(f"model.fields.{name}: the state lacks {missing[0]!r}")
    return merged


def _is_coupling(key: str) -> bool:
    return key.startswith("encoder.") and any(part in key for part in _COUPLING_PARTS)


def _fit(own: torch.Tensor, value: torch.Tensor, key: str, name: str) -> torch.Tensor:
    if own.shape == value.shape:
        return value
    if ".attention.kv_self." not in key:
        raise ConfigError(
            f"model.fields.{name}: {key!r} is {tuple(value.shape)} in the state, "
            f"{tuple(own.shape)} in the model"
        )
    # kv_self rows are (2, heads, head_dim): keys then values; keep the first heads of each.
    ours, theirs = own.reshape(2, -1, *own.shape[1:]), value.reshape(2, -1, *value.shape[1:])
    rows = min(ours.shape[1], theirs.shape[1])  # whole heads: each is head_dim rows
    fitted = ours.clone()
    fitted[:, :rows] = theirs[:, :rows]
    return fitted.reshape(own.shape)
