"""The multiformer: one encoder, decoder and ensemble tail per field, coupled by cross-attention.

    for each field f:   x_f = embed(tokens_f, alpha_f, masked_f)            (B, N_f, D_f)
    for layer i:        x_f = encoder_f[i](x_f, {x_g: g coupled to f})      all fields in lockstep
    for each field f:   y_f = decoder_f(x_f, cross-attending to x_f)         (B, N_f, D_f)
                        ensemble_f = tail_f(y_f[target_index_f])            (B, M_f, E_f, P_f)
                                     (+ first guess_f[target_index_f] with `residual: time`)

Every field has its own width, so a field is plug-and-play: `Multiformer.fields[name]` holds all
of its weights, and `field_state_dict` / `load_field_state_dict` move one field between models
(pre-train fields one by one, then assemble them).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from atmorep_core.errors import ConfigError
from atmorep_core.model.assembly import FieldState, check_compatible, merge_field_state
from atmorep_core.model.attention import Block, BlockOptions, QkNorm
from atmorep_core.model.config import Checkpointing, FieldModelConfig, ModelConfig
from atmorep_core.model.embedding import FieldEmbedding
from atmorep_core.model.io import FieldInput, FieldOutput, ModelInput
from atmorep_core.model.reference import time_reference
from atmorep_core.model.tail import EnsembleTail
from atmorep_core.model.token_info import TokenInfoEmbedding

ENCODER = "encoder"  # the decoder's name for the source its cross heads attend to


class FieldModel(nn.Module):
    """All weights of one field: embedding, encoder, decoder and tail."""

    def __init__(
        self,
        config: FieldModelConfig,
        coupled: Mapping[str, int],
        frequencies: int,
        checkpointing: Checkpointing = "none",
    ) -> None:
        super().__init__()
        self.config = config
        d, h = config.embed_dim, config.num_heads
        self.embedding = _embedding(config, frequencies)
        couplings = {name: (width, config.coupling_heads) for name, width in coupled.items()}
        coupling_heads = 0 if config.coupling_heads_extra else len(coupled) * config.coupling_heads
        encoder_options = _block_options(config, checkpointing, decoder=False)
        self.encoder = nn.ModuleList(
            Block(d, h - coupling_heads, d // h, couplings, encoder_options)
            for _ in range(config.encoder_layers)
        )
        heads, cross = config.decoder_heads, config.encoder_heads_in_decoder
        to_encoder = {ENCODER: (d, cross)}
        decoder_options = _block_options(config, checkpointing, decoder=True)
        layers = config.decoder_layers if config.predicted else 0
        self.decoder = nn.ModuleList(
            Block(d, heads - cross, d // heads, to_encoder, decoder_options) for _ in range(layers)
        )
        if config.predicted:
            per_member = config.tail_norm == "per_member"
            self.tail = EnsembleTail(d, config.token_points, config.tail_heads, per_member)

    def embed(self, field: FieldInput) -> torch.Tensor:
        b = field.tokens.shape[0]
        tokens = field.tokens.reshape(b, -1, field.token_points)  # (B, N, P)
        alpha = field.alpha.reshape(b, tokens.shape[1], -1)  # (B, N, 7)
        if isinstance(self.embedding, TokenInfoEmbedding):
            levels, n_t, n_y, n_x = field.tokens.shape[1:5]
            return self.embedding(tokens, alpha, field.masked, (levels, n_t, n_y, n_x))
        return self.embedding(tokens, alpha, field.masked)  # (B, N, D)

    def decode(self, encoded: list[torch.Tensor], target_index: torch.Tensor) -> torch.Tensor:
        """encoded: the encoder's output after each layer, (B, N, D) each -> (B, M, E, P)."""
        y = encoded[-1]  # (B, N, D)
        for i, block in enumerate(self.decoder):
            source = encoded[-1 - i] if self.config.decoder_reads == "mirrored" else encoded[-1]
            y = block(y, {ENCODER: source})
        picked = target_index[..., None].expand(-1, -1, y.shape[-1])  # (B, M, D)
        return self.tail(torch.gather(y, 1, picked))  # (B, M, E, P)


def _embedding(config: FieldModelConfig, frequencies: int) -> nn.Module:
    if config.token_embedding == "token_info":
        return TokenInfoEmbedding(
            config.token_points, config.embed_dim, config.token_info_width, config.token_size
        )
    return FieldEmbedding(config.token_points, config.embed_dim, frequencies)


def _block_options(
    config: FieldModelConfig, checkpointing: Checkpointing, decoder: bool
) -> BlockOptions:
    qk_norm: QkNorm = config.qk_norm_type if config.qk_norm else "none"
    if decoder and config.decoder_qk_norm == "affine_layer":
        qk_norm = "affine_layer"
    return BlockOptions(
        mlp_ratio=config.mlp_ratio,
        dropout=config.dropout,
        qk_norm=qk_norm,
        checkpointing=checkpointing,
        norm_affine=config.layer_norm_affine,
        bias=config.attention_bias,
        mlp_output_gelu=config.mlp_output_gelu,
    )


class Multiformer(nn.Module):
    """`Multiformer(config)(inputs)`: per field FieldInput -> per field FieldOutput."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        widths = {f.name: f.embed_dim for f in config.fields}
        self.fields = nn.ModuleDict(
            {
                f.name: FieldModel(
                    f,
                    {g: widths[g] for g in config.coupled(f.name)},
                    config.alpha_frequencies,
                    config.activation_checkpointing,
                )
                for f in config.fields
            }
        )

    def forward(self, inputs: ModelInput) -> dict[str, FieldOutput]:
        self._check(inputs)
        names = self.config.names
        states = {name: self.field(name).embed(inputs[name]) for name in names}  # (B, N_f, D_f)
        layers: dict[str, list[torch.Tensor]] = {name: [] for name in names}
        depth = max(f.encoder_layers for f in self.config.fields)
        for i in range(depth):  # lockstep: layer i of every field sees the others after layer i-1
            states = {name: self._encode(name, i, states) for name in names}
            for name in names:  # only references: a mirrored decoder reads every layer's output
                layers[name].append(states[name])
        predicted = [f.name for f in self.config.fields if f.predicted]
        return {
            name: FieldOutput(self._decode(name, layers[name], inputs[name])) for name in predicted
        }

    def _decode(self, name: str, encoded: list[torch.Tensor], field: FieldInput) -> torch.Tensor:
        ensemble = self.field(name).decode(encoded, field.target_index)  # (B, M, E, P)
        if self.config.field(name).residual == "time":
            guess = time_reference(field)  # (B, N, P)
            picked = field.target_index[..., None].expand(-1, -1, guess.shape[-1])
            ensemble = ensemble + torch.gather(guess, 1, picked)[:, :, None]
        return ensemble

    def _encode(self, name: str, layer: int, states: Mapping[str, torch.Tensor]) -> torch.Tensor:
        encoder = self.field(name).encoder
        if layer >= len(encoder):  # a shallower field keeps its last state for the others
            return states[name]
        others = {g: states[g] for g in self.config.coupled(name)}
        return encoder[layer](states[name], others)

    def field(self, name: str) -> FieldModel:
        module = self.fields[name]
        assert isinstance(module, FieldModel)
        return module

    def _check(self, inputs: ModelInput) -> None:
        for name in inputs:
            if name not in self.fields:
                raise ConfigError(f"inputs: field {name!r} is not in the model {self.config.names}")
        for field in self.config.fields:
            if field.name not in inputs:
                raise ConfigError(f"inputs: model field {field.name!r} has no input")
            got = tuple(inputs[field.name].tokens.shape[5:])
            if got != field.token_size:
                raise ConfigError(
                    f"model.fields.{field.name}.token_size: model {field.token_size}, "
                    f"input tokens {got}"
                )

    def field_state_dict(self, name: str) -> FieldState:
        """One field's weights and configuration, to move into another multiformer."""
        state = {k: v.detach().clone() for k, v in self.field(name).state_dict().items()}
        return FieldState(self.config.field(name), state)

    def load_field_state_dict(self, name: str, state: FieldState) -> None:
        """Load one field's weights; ConfigError naming the key where the architectures differ.

        Couplings may differ (assembling fields pre-trained alone): cross-attention weights for
        fields the state did not couple keep their initialisation, and self-attention keys and
        values keep as many of the state's heads as this model has self heads.
        """
        check_compatible(self.config.field(name), state.config)
        field = self.field(name)
        field.load_state_dict(merge_field_state(field.state_dict(), state.tensors, name))


def count_parameters(config: ModelConfig) -> dict[str, int]:
    """Parameters per field and in `total`, counted on the meta device (nothing is allocated)."""
    with torch.device("meta"):
        model = Multiformer(config)
    counts = {
        name: sum(p.numel() for p in model.fields[name].parameters()) for name in config.names
    }
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts
