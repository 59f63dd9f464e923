"""The multiformer's configuration, validated at the edge: a typo is rejected by its dotted key.

A recipe is one YAML file. Its `model:` section is typed here; `data:` and `training:` are kept
as plain mappings until the issues that own them type them (the trainer reads `training:`).
A field entry uses the sampler's keys for what the two share (name, levels, token_count,
token_size, normalisation), so `ModelConfig.sampler_section()` feeds the sampler directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from atmorep_core.config_errors import validate_section
from atmorep_core.errors import ConfigError

RECIPE_FILE = "recipe.yaml"  # a run folder's resolved recipe
SAMPLER_KEYS = ("name", "levels", "token_count", "token_size", "normalisation")
Checkpointing = Literal["none", "mlp", "block"]  # ModelConfig.activation_checkpointing
TokenEmbedding = Literal["alpha", "token_info"]  # FieldModelConfig.token_embedding


class FieldModelConfig(BaseModel):
    """One field of the multiformer: its tokens and its own encoder, decoder and tail."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """Field name, as in the store and the sampler (letters, digits, underscores)."""
    levels: tuple[int, ...] = Field(min_length=1)
    """Vertical levels; one level is one stack of tokens."""
    token_count: tuple[PositiveInt, PositiveInt, PositiveInt] = (12, 6, 12)
    """Tokens per level in (time, lat, lon); no positional table, so any count runs."""
    token_size: tuple[PositiveInt, PositiveInt, PositiveInt] = (3, 9, 9)
    """Grid points per token in (time, lat, lon); fixes the embedding and tail widths."""
    normalisation: Literal["local", "global"] = "local"
    """Passed to the sampler: per grid point and month (local) or per level (global)."""
    embed_dim: PositiveInt = 2048
    """Width D of this field's latent space."""
    num_heads: PositiveInt = 16
    """Attention heads per layer; D must be a multiple of it."""
    encoder_layers: PositiveInt = 10
    """Encoder depth."""
    decoder_layers: PositiveInt = 10
    """Decoder depth."""
    mlp_ratio: float = Field(default=2.0, gt=0)
    """MLP hidden width as a multiple of D (the seed: 2)."""
    tail_heads: PositiveInt = 16
    """Ensemble members E: one tail head each."""
    dropout: float = Field(default=0.0, ge=0, lt=1)
    """Dropout on attention weights and residual branches while training."""
    qk_norm: bool = False
    """RMS-normalise queries and keys per head (steadier attention logits at large width)."""
    coupling_heads: PositiveInt = 1
    """Encoder heads given to each field this one cross-attends to (the rest attend to itself)."""
    decoder_cross_heads: PositiveInt | None = None
    """Decoder heads that attend to the encoder output; None: half of num_heads."""
    couples_with: tuple[str, ...] | None = None
    """Fields this one cross-attends to in its encoder; None: every other field, []: none."""
    residual: Literal["none", "time"] = "none"
    """none: the tail predicts the values (AtmoRep); time: it predicts their departure from the
    shown values interpolated in time (`model/reference.py`: persistence for a forecast)."""
    # The options below express the published AtmoRep network (`model/original/`); their
    # defaults are this project's own network.
    token_embedding: TokenEmbedding = "alpha"
    """alpha: values, alpha features through an MLP and a learned mask token, added; token_info:
    the original's values (D - token_info_width wide) beside its raw token infos
    (token_info_width wide), plus its fixed harmonic positional encoding; hidden tokens zeroed."""
    token_info_width: PositiveInt = 16
    """Channels of the token-info embedding (token_embedding: token_info)."""
    coupling_heads_extra: bool = False
    """False: coupling heads are taken from num_heads; True: they are added to num_heads."""
    decoder_num_heads: PositiveInt | None = None
    """Decoder heads; None: num_heads."""
    decoder_reads: Literal["last", "mirrored"] = "last"
    """Which encoder output decoder layer l attends to: the last one, or layer n - 1 - l's."""
    layer_norm_affine: bool = True
    """Scale and shift in the blocks' layer norms (the original: none)."""
    attention_bias: bool = True
    """Biases in the attention projections (the original: none)."""
    mlp_output_gelu: bool = False
    """A GELU after the MLP's second linear map too (the original)."""
    qk_norm_type: Literal["rms", "layer"] = "rms"
    """qk_norm's kind: RMSNorm, or LayerNorm without affine (the original's with_qk_lnorm)."""
    decoder_qk_norm: Literal["as_encoder", "affine_layer"] = "as_encoder"
    """The decoder's q/k norm: as the encoder's, or the original's affine LayerNorm (always on)."""
    tail_norm: Literal["shared", "per_member"] = "shared"
    """One layer norm before all tail heads, or one per member (the original)."""
    predicted: bool = True
    """False: the field only informs the others (no decoder, no tail, no output)."""

    @property
    def token_points(self) -> int:
        """P: grid points per token."""
        t, y, x = self.token_size
        return t * y * x

    @property
    def decoder_heads(self) -> int:
        """Heads of a decoder layer, self and cross together."""
        return self.decoder_num_heads or self.num_heads

    @property
    def encoder_heads_in_decoder(self) -> int:
        """Decoder heads that attend to the encoder output (the others attend to the decoder)."""
        return self.decoder_cross_heads or max(1, self.decoder_heads // 2)

    @model_validator(mode="after")
    def _heads_divide_width(self) -> FieldModelConfig:
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f"embed_dim: {self.embed_dim} is not a multiple of num_heads {self.num_heads}"
            )
        if self.embed_dim % self.decoder_heads:
            raise ValueError(
                f"decoder_num_heads: embed_dim {self.embed_dim} is not a multiple of "
                f"{self.decoder_heads}"
            )
        if self.encoder_heads_in_decoder >= self.decoder_heads:
            raise ValueError(
                f"decoder_cross_heads: {self.encoder_heads_in_decoder} leaves no self-attention "
                f"head of {self.decoder_heads}"
            )
        if self.decoder_reads == "mirrored" and self.decoder_layers > self.encoder_layers:
            raise ValueError(
                f"decoder_reads: mirrored needs decoder_layers ({self.decoder_layers}) <= "
                f"encoder_layers ({self.encoder_layers})"
            )
        if self.token_embedding == "token_info" and self.token_info_width >= self.embed_dim:
            raise ValueError(
                f"token_info_width: {self.token_info_width} leaves no channel of embed_dim "
                f"{self.embed_dim} for the values"
            )
        return self


class ModelConfig(BaseModel):
    """The multiformer: its fields and options that hold for all of them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fields: tuple[FieldModelConfig, ...] = Field(min_length=1)
    """The fields, each with its own embedding, encoder, decoder and tail."""
    activation_checkpointing: Checkpointing = "none"
    """Which activations each encoder and decoder block recomputes in the backward pass instead of
    keeping them from the forward pass (no effect without gradients):

    - "none": keep everything (fastest, most memory).
    - "mlp": recompute only `mlp_norm -> mlp -> drop`: drops 5 of the about 15 (B, N, D)-sized
      tensors a block keeps, for about 3 % more FLOPs (attention dominates them).
    - "block": recompute whole blocks: keeps only each block's input, for one more forward pass
      (about a third more FLOPs).
    """
    alpha_frequencies: PositiveInt = 6
    """Harmonics (1, 2, 4, ...) of the sin/cos features of the periodic alpha entries."""

    @model_validator(mode="after")
    def _couplings_resolve(self) -> ModelConfig:
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"fields: a field is listed twice ({', '.join(names)})")
        for i, field in enumerate(self.fields):
            for other in field.couples_with or ():
                if other not in names or other == field.name:
                    raise ValueError(
                        f"fields.{i}.couples_with: {other!r} is not another field of the model"
                    )
            self_heads = field.num_heads - field.coupling_heads * len(self.coupled(field.name))
            if self_heads < 1 and not field.coupling_heads_extra:
                raise ValueError(
                    f"fields.{i}.coupling_heads: {field.coupling_heads} head(s) for each of "
                    f"{len(self.coupled(field.name))} coupled fields leave no self-attention "
                    f"head of {field.num_heads}"
                )
        return self

    def field(self, name: str) -> FieldModelConfig:
        for field in self.fields:
            if field.name == name:
                return field
        raise ConfigError(f"model.fields: no field {name!r} (fields: {self.names})")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def coupled(self, name: str) -> tuple[str, ...]:
        """Fields that `name` cross-attends to in its encoder."""
        field = self.field(name)
        if field.couples_with is None:
            return tuple(n for n in self.names if n != name)
        return field.couples_with

    def sampler_section(self) -> dict[str, Any]:
        """The sampler's configuration of these fields (`SamplerConfig.from_dict` takes it)."""
        dumped = [f.model_dump(include=set(SAMPLER_KEYS)) for f in self.fields]
        return {"fields": [{k: d[k] for k in SAMPLER_KEYS} for d in dumped]}


class Recipe(BaseModel):
    """A recipe file. `data` and `training` stay untyped mappings until their issues type them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: ModelConfig
    """The multiformer."""
    data: dict[str, Any] | None = None
    """Store, time windows and sampling; typed by the data issue."""
    training: dict[str, Any] | None = None
    """Masking, losses, optimiser, batch; typed by the training issue."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Recipe:
        """Validate a parsed recipe; a ConfigError names the first bad key, dotted."""
        return validate_section(cls, data, prefix="")


def model_config_from_dict(data: Mapping[str, Any]) -> ModelConfig:
    """Validate a recipe's `model:` section alone; errors name `model.<key>`."""
    return validate_section(ModelConfig, data, prefix="model.")


def recipe_file(path: Path) -> Path:
    """The recipe a path names: the file itself, or a run folder's resolved recipe."""
    return path / RECIPE_FILE if path.is_dir() else path
