"""Attention whose heads are split between a field's own tokens and other sources, and the
pre-norm block built on it.

As in AtmoRep's multiformer, a layer does not add a second attention for cross-attention: some
of its heads take keys and values from the field itself, the others from another source (another
field's encoding, or the field's encoder output in the decoder). Queries and the output
projection are shared, so a layer keeps about 4 D^2 attention + 4 D^2 MLP parameters (MLP ratio
2) however many fields it couples, and a source of another width is projected from its own width
straight to its heads' keys and values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from atmorep_core.model.config import Checkpointing

Sources = Mapping[str, tuple[int, int]]  # source name -> (its width, heads attending to it)
QkNorm = Literal["none", "rms", "layer", "affine_layer"]  # what normalises queries and keys


@dataclass(frozen=True)
class BlockOptions:
    """How a block is built beyond its widths and heads; the defaults are this project's own."""

    mlp_ratio: float
    dropout: float
    qk_norm: QkNorm = "none"
    checkpointing: Checkpointing = "none"
    norm_affine: bool = True  # scale and shift in the block's layer norms
    bias: bool = True  # biases in the attention projections
    mlp_output_gelu: bool = False  # a GELU after the MLP's second linear map too


def qk_norm_module(kind: QkNorm, head_dim: int) -> nn.Module:
    """The per-head normalisation of queries or keys of one kind."""
    if kind == "rms":
        return nn.RMSNorm(head_dim)
    if kind == "layer":
        return nn.LayerNorm(head_dim, elementwise_affine=False)
    if kind == "affine_layer":
        return nn.LayerNorm(head_dim)
    return nn.Identity()


class SplitHeadAttention(nn.Module):
    """Multi-head attention of (B, N, D) queries over themselves and named sources.

    `self_heads` attend to the queries' own tokens, each source's heads to that source; all heads
    are `head_dim` wide, so the queries and the output span (self + source heads) * head_dim.
    """

    def __init__(
        self,
        width: int,
        self_heads: int,
        head_dim: int,
        sources: Sources,
        options: BlockOptions,
    ) -> None:
        super().__init__()
        assert self_heads >= 1, "every layer keeps at least one self-attention head"
        self.self_heads, self.head_dim, self.dropout = self_heads, head_dim, options.dropout
        self.heads = self_heads + sum(h for _, h in sources.values())
        inner, bias = self.heads * head_dim, options.bias
        self.query = nn.Linear(width, inner, bias=bias)
        self.kv_self = nn.Linear(width, 2 * self_heads * head_dim, bias=bias)
        self.kv = nn.ModuleDict(
            {name: nn.Linear(w, 2 * h * head_dim, bias=bias) for name, (w, h) in sources.items()}
        )
        self.out = nn.Linear(inner, width, bias=bias)
        self.q_norm = qk_norm_module(options.qk_norm, head_dim)
        self.k_norm = qk_norm_module(options.qk_norm, head_dim)

    def forward(self, x: torch.Tensor, sources: Mapping[str, torch.Tensor]) -> torch.Tensor:
        b, n, _ = x.shape
        q = self.q_norm(self.query(x).view(b, n, self.heads, self.head_dim).transpose(1, 2))
        groups = [self._keys_values(self.kv_self, x)]  # [(B, h, N_s, dh) x 2] per group
        groups += [self._keys_values(self.kv[name], sources[name]) for name in self.kv]
        outputs, first = [], 0
        # On CPU, attention dropout selects a kernel that stores the full (B, H, N, N) scores
        # (over a GB per call at base size): there, dropout acts on the residual branches only.
        p = self.dropout if self.training and x.is_cuda else 0.0
        for k, v in groups:
            heads = slice(first, first + k.shape[1])
            outputs.append(F.scaled_dot_product_attention(q[:, heads], k, v, dropout_p=p))
            first = heads.stop
        y = torch.cat(outputs, dim=1)  # (B, H, N, dh)
        return self.out(y.transpose(1, 2).reshape(b, n, -1))  # (B, N, D)

    def _keys_values(
        self, project: nn.Module, source: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, _ = source.shape
        kv = project(source).view(b, n, 2, -1, self.head_dim)  # (B, N_s, 2, h, dh)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, h, N_s, dh)
        return self.k_norm(k), v


class Mlp(nn.Module):
    """Two linear maps with a GELU between (and optionally after): D -> ratio * D -> D."""

    def __init__(self, width: int, ratio: float, dropout: float, output_gelu: bool = False) -> None:
        super().__init__()
        hidden = round(width * ratio)
        layers = [
            nn.Linear(width, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, width),
        ]
        self.net = nn.Sequential(*layers, *([nn.GELU()] if output_gelu else []))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Block(nn.Module):
    """Pre-norm split-head attention then MLP, each on a residual branch (encoder and decoder).

    `options.checkpointing` ("none", "mlp" or "block", as `ModelConfig.activation_checkpointing`)
    says what the backward pass recomputes instead of keeping it from the forward pass.
    """

    def __init__(
        self, width: int, self_heads: int, head_dim: int, sources: Sources, options: BlockOptions
    ) -> None:
        super().__init__()
        self.checkpointing = options.checkpointing
        affine = options.norm_affine
        self.norm = nn.LayerNorm(width, elementwise_affine=affine)
        self.source_norms = nn.ModuleDict(
            {name: nn.LayerNorm(w, elementwise_affine=affine) for name, (w, _) in sources.items()}
        )
        self.attention = SplitHeadAttention(width, self_heads, head_dim, sources, options)
        self.mlp_norm = nn.LayerNorm(width, elementwise_affine=affine)
        self.mlp = Mlp(width, options.mlp_ratio, options.dropout, options.mlp_output_gelu)
        self.drop = nn.Dropout(options.dropout)

    def forward(self, x: torch.Tensor, sources: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if self._recomputes("block"):
            return recomputed(self._attention_then_mlp, x, sources)
        return self._attention_then_mlp(x, sources)

    def _attention_then_mlp(
        self, x: torch.Tensor, sources: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        normed = {name: norm(sources[name]) for name, norm in self.source_norms.items()}
        x = x + self.drop(self.attention(self.norm(x), normed))  # (B, N, D)
        if self._recomputes("mlp"):
            return x + recomputed(self._mlp_branch, x)
        return x + self._mlp_branch(x)  # (B, N, D)

    def _mlp_branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.mlp(self.mlp_norm(x)))  # (B, N, D)

    def _recomputes(self, part: Checkpointing) -> bool:
        # Without gradients nothing is kept for a backward pass, so there is nothing to save.
        return self.checkpointing == part and torch.is_grad_enabled()


def recomputed(function: Callable[..., torch.Tensor], *args: object) -> torch.Tensor:
    """`function(*args)`, keeping only its inputs: the backward pass runs it again for the rest.

    Non-reentrant checkpointing takes a mapping of tensors (the sources) as an argument, and it
    replays the RNG state, so dropout draws the same masks when recomputed."""
    out = checkpoint(function, *args, use_reentrant=False)
    assert isinstance(out, torch.Tensor)
    return out
