"""A published AtmoRep state dict (`AtmoRep_id<ID>.mod`) as this project's Multiformer weights.

The file is read with `torch.load(weights_only=True)`: only tensors and plain containers are
rebuilt, never arbitrary objects, so a file carrying a pickled program is refused unexecuted.
The older naming of the first published models (one matrix per head) is translated first, as
the original's own loader does: per-head matrices concatenated, the decoder's q/k norms set to
weight 1 AND bias 1, and the shared `embed_token_info` used for every field.

Row orders: the original's `proj_heads` rows are (head, q/k/v, head dim), its key-value
projections (head, k/v, head dim); this project's `query` rows are (head, head dim) with the
self heads first, its key-value projections (k/v, head, head dim).
"""

from __future__ import annotations

import pickle
import re
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

import torch

from atmorep_core.errors import CheckpointError, ConfigError
from atmorep_core.model.config import FieldModelConfig, ModelConfig

Tensors = dict[str, torch.Tensor]

_OLD_ENCODER = re.compile(
    r"^(encoders\.\d+\.heads\.\d+)\.heads_self\.(\d+)\.proj_(qs|ks|vs)\.weight$"
)
_OLD_COUPLING = re.compile(r"^encoders\.\d+\.heads\.\d+\.heads_other\.")
_OLD_DECODER = re.compile(
    r"^(decoders\.\d+\.blocks\.\d+)\.(heads|heads_other)\.(\d+)\.proj_(qs|ks|vs)\.weight$"
)


def read_state_dict(path: Path) -> Tensors:
    """The saved tensors by name; CheckpointError naming the file if it is not a state dict."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file (a model folder holds AtmoRep_id<ID>.mod)")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = str(error).splitlines()[0]
        raise CheckpointError(
            f"{path}: not a plain state dict, refused unread ({reason})"
        ) from None
    except (OSError, RuntimeError, EOFError, ValueError) as error:
        raise CheckpointError(f"{path}: truncated or not a torch weights file ({error})") from None
    if not isinstance(loaded, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in loaded.values()
    ):
        raise CheckpointError(f"{path}: not a state dict of tensors")
    return {str(k): v.float() for k, v in loaded.items()}


def translate_old_naming(state: Tensors) -> Tensors:
    """The state in the current naming (unchanged if it already is)."""
    if any(_OLD_COUPLING.match(k) for k in state):
        raise ConfigError("weights: coupled fields in the old weight naming cannot be imported")
    state = dict(state)
    encoder: dict[str, dict[tuple[int, str], torch.Tensor]] = defaultdict(dict)
    decoder: dict[str, dict[tuple[str, int, str], torch.Tensor]] = defaultdict(dict)
    for key in list(state):
        if match := _OLD_ENCODER.match(key):
            prefix, head, part = match.groups()
            encoder[prefix][int(head), part] = state.pop(key)
        elif match := _OLD_DECODER.match(key):
            prefix, kind, head, part = match.groups()
            decoder[prefix][kind, int(head), part] = state.pop(key)
    for prefix, heads in encoder.items():
        state[f"{prefix}.proj_heads.weight"] = _concat_heads(heads, ("qs", "ks", "vs"))
    for prefix, parts in decoder.items():
        own = {(h, p): w for (kind, h, p), w in parts.items() if kind == "heads"}
        other = {(h, p): w for (kind, h, p), w in parts.items() if kind == "heads_other"}
        state[f"{prefix}.proj_heads.weight"] = _concat_heads(own, ("qs", "ks", "vs"))
        state[f"{prefix}.proj_heads_o_q.weight"] = _concat_heads(other, ("qs",))
        state[f"{prefix}.proj_heads_o_kv.weight"] = _concat_heads(other, ("ks", "vs"))
        head_dim = next(iter(own.values())).shape[0]
        for norm in ("ln_q", "ln_k"):  # as the original's loader: weight and bias both 1
            for kind in ("weight", "bias"):
                state[f"{prefix}.{norm}.{kind}"] = torch.ones(head_dim)
    return state


def _concat_heads(
    heads: Mapping[tuple[int, str], torch.Tensor], parts: tuple[str, ...]
) -> torch.Tensor:
    count = 1 + max(h for h, _ in heads)
    return torch.cat([heads[h, p] for h in range(count) for p in parts])


def project_state_dict(config: ModelConfig, state: Tensors) -> Tensors:
    """The Multiformer state dict of `config` from the original's (current naming) state.

    KeyError-free: a tensor the mapping needs and the state lacks is a CheckpointError naming it.
    """
    source = _Source(state)
    shared_info = _info_source(state)
    mapped: Tensors = {}
    predicted = [f for f in config.fields if f.predicted]
    for index, field in enumerate(config.fields):
        root = f"fields.{field.name}."
        mapped[root + "embedding.values.weight"] = source.take(f"embeds.{index}.weight")
        mapped[root + "embedding.values.bias"] = source.take(f"embeds.{index}.bias")
        info = shared_info or f"embeds_token_info.{index}"
        mapped[root + "embedding.info.weight"] = source.take(f"{info}.weight")
        mapped[root + "embedding.info.bias"] = source.take(f"{info}.bias")
        for layer in range(field.encoder_layers):
            at = f"encoders.{index}.heads.{layer}."
            coupled = config.coupled(field.name)
            head_dim = field.embed_dim // field.num_heads
            to = root + f"encoder.{layer}."
            mapped.update(_encoder_attention(source, at, to, coupled, head_dim))
            mapped.update(
                _mlp(source, f"encoders.{index}.mlps.{layer}.", root + f"encoder.{layer}.")
            )
    for index, field in enumerate(predicted):
        mapped.update(_decoder_and_tail(source, index, field))
    source.check_all_used(config)
    return mapped


def _info_source(state: Tensors) -> str | None:
    """The shared token-info embedding where the per-field ones are absent or all zero."""
    per_field = state.get("embeds_token_info.0.weight")
    if per_field is None or not per_field.abs().max() > 0:
        return "embed_token_info"
    return None


class _Source:
    """The original's tensors, remembering which were used."""

    def __init__(self, state: Tensors) -> None:
        self.state, self.used = state, set[str]()

    def take(self, key: str) -> torch.Tensor:
        if key not in self.state:
            raise CheckpointError(f"weights: {key!r} is missing from the weights file")
        self.used.add(key)
        return self.state[key]

    def check_all_used(self, config: ModelConfig) -> None:
        # Saved twice (the encoders' own reference to the embedding) or unused by the forward.
        spare = re.compile(r"^(encoders\.\d+\.embed\.|embed_token_info\.|embeds_token_info\.)")
        for key in self.state:
            if key not in self.used and not spare.match(key):
                raise CheckpointError(
                    f"weights: {key!r} has no place in the model of fields {config.names}"
                )


def _encoder_attention(
    source: _Source, at: str, to: str, coupled: tuple[str, ...], head_dim: int
) -> Tensors:
    query, kv_self = _split_qkv(source.take(at + "proj_heads.weight"), head_dim)
    queries = [query]
    mapped = {to + "attention.kv_self.weight": kv_self}
    if coupled:
        queries.append(source.take(at + "proj_heads_other.0.weight"))
        for j, name in enumerate(coupled):
            kv = source.take(at + f"proj_heads_other.{1 + j}.weight")
            mapped[to + f"attention.kv.{name}.weight"] = _kv_rows(kv, head_dim)
    mapped[to + "attention.query.weight"] = torch.cat(queries)
    mapped[to + "attention.out.weight"] = source.take(at + "proj_out.weight")
    return mapped


def _mlp(source: _Source, at: str, to: str) -> Tensors:
    return {
        to + f"mlp.net.{i}.{kind}": source.take(at + f"blocks.{i}.{kind}")
        for i in (0, 3)
        for kind in ("weight", "bias")
    }


def _decoder_and_tail(source: _Source, index: int, field: FieldModelConfig) -> Tensors:
    root, mapped = f"fields.{field.name}.", {}
    head_dim = field.embed_dim // field.decoder_heads
    for layer in range(field.decoder_layers):
        at, to = f"decoders.{index}.blocks.{2 * layer}.", root + f"decoder.{layer}."
        query, kv_self = _split_qkv(source.take(at + "proj_heads.weight"), head_dim)
        cross_query = source.take(at + "proj_heads_o_q.weight")
        mapped[to + "attention.query.weight"] = torch.cat([query, cross_query])
        mapped[to + "attention.kv_self.weight"] = kv_self
        mapped[to + "attention.kv.encoder.weight"] = _kv_rows(
            source.take(at + "proj_heads_o_kv.weight"), head_dim
        )
        mapped[to + "attention.out.weight"] = source.take(at + "proj_out.weight")
        for norm, ours in (("ln_q", "q_norm"), ("ln_k", "k_norm")):
            for kind in ("weight", "bias"):
                mapped[to + f"attention.{ours}.{kind}"] = source.take(at + f"{norm}.{kind}")
        mapped.update(_mlp(source, f"decoders.{index}.blocks.{2 * layer + 1}.", to))
    nets = [f"tails.{index}.tail_nets.{e}." for e in range(field.tail_heads)]
    mapped[root + "tail.norm_weight"] = torch.stack([source.take(n + "0.weight") for n in nets])
    mapped[root + "tail.norm_bias"] = torch.stack([source.take(n + "0.bias") for n in nets])
    mapped[root + "tail.weight"] = torch.stack([source.take(n + "1.weight").T for n in nets])
    mapped[root + "tail.bias"] = torch.stack([source.take(n + "1.bias") for n in nets])
    return mapped


def _split_qkv(weight: torch.Tensor, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(heads * 3 * dh, D) rows (head, q/k/v, dh) -> query (heads * dh, D), kv (2 heads dh, D)."""
    width = weight.shape[1]
    parts = weight.reshape(-1, 3, head_dim, width)  # (heads, q/k/v, dh, D)
    query = parts[:, 0].reshape(-1, width)
    return query, parts[:, 1:].transpose(0, 1).reshape(-1, width)


def _kv_rows(weight: torch.Tensor, head_dim: int) -> torch.Tensor:
    """(heads * 2 * dh, D) rows (head, k/v, dh) -> rows (k/v, head, dh)."""
    width = weight.shape[1]
    return weight.reshape(-1, 2, head_dim, width).transpose(0, 1).reshape(-1, width)
