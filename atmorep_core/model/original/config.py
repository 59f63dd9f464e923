"""A published AtmoRep run's configuration (`model_id<ID>.json`) as this project's ModelConfig.

The JSON is the original's `Config.__dict__`. Every key is either architecture, translated to a
ModelConfig option (or required to hold the one value the project expresses), or about training
and data only, and ignored. Any other key, or an architecture value the project cannot express,
is refused in one line naming the key and its value (ConfigError, exit code 2).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from atmorep_core.errors import CheckpointError, ConfigError
from atmorep_core.model.config import ModelConfig, model_config_from_dict

# Keys that describe training, data loading, logging or hardware: nothing of the network.
RUN_ONLY_KEYS = frozenset(
    {
        "with_ddp", "num_accs_per_task", "par_rank", "par_size", "wandb_id", "with_wandb",
        "attention", "rng_seed", "torch_seed", "model_id", "fields_targets", "years_train",
        "years_val", "years_test", "month", "geo_range_sampling", "time_sampling", "batch_size",
        "batch_size_validation", "batch_size_test", "num_loader_workers",
        "num_samples_per_epoch", "num_samples_validate", "grad_checkpointing",
        "with_mixed_precision", "losses", "BERT_strategy", "forecast_num_tokens",
        "BERT_fields_synced", "BERT_mr_max", "BERT_window", "n_size", "lr_start", "lr_max",
        "lr_min", "lr_decay_rate", "lr_start_epochs", "weight_decay", "file_path",
        "num_epochs", "optimizer_zero", "log_test_num_ranks", "save_grads", "profile",
        "test_initial", "model_log_frequency", "attention_mode", "token_overlap",
        "lat_sampling_weighted", "file_shape", "years", "loader_num_workers",
    }
)  # fmt: skip
# Architecture keys that must hold the value the project's network expresses.
FIXED_KEYS: Mapping[str, object] = {
    "size_token_info": 8,
    "with_cls": False,
    "with_layernorm": True,
    "encoder_num_mlp_layers": 2,
    "encoder_att_type": "dense",
    "decoder_num_mlp_layers": 2,
    "decoder_self_att": False,
    "decoder_cross_att_rate": 1.0,
    "decoder_att_type": "dense",
    "net_tail_num_layers": 0,
    "token_infos_transformation": "identity",
}
# Architecture keys translated into options.
TRANSLATED_KEYS = frozenset(
    {
        "fields", "fields_prediction", "size_token_info_net", "coupling_num_heads_per_field",
        "dropout_rate", "with_qk_lnorm", "encoder_num_layers", "encoder_num_heads",
        "decoder_num_layers", "decoder_num_heads", "decoder_cross_att_ratio",
        "net_tail_num_nets",
    }
)  # fmt: skip
# Options every imported field shares: the original network's choices.
ORIGINAL_OPTIONS: Mapping[str, object] = {
    "token_embedding": "token_info",
    "coupling_heads_extra": True,
    "decoder_reads": "mirrored",
    "layer_norm_affine": False,
    "attention_bias": False,
    "mlp_output_gelu": True,
    "qk_norm_type": "layer",
    "decoder_qk_norm": "affine_layer",
    "tail_norm": "per_member",
    "mlp_ratio": 2.0,
}


def read_json(path: Path) -> dict[str, Any]:
    """The run's configuration; CheckpointError naming the file if it is not a JSON object."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(
            f"{path}: no such file (a model folder holds model_id<ID>.json)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: not a model configuration ({error})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: not a model configuration (not a JSON object)")
    return data


def training_section(original: Mapping[str, Any]) -> dict[str, Any]:
    """The recipe's `training:` masking as the original trained: its question is the one a
    product asks (a forecast hides `forecast_num_tokens` time tokens) and fine-tuning starts from.
    """
    strategy = original.get("BERT_strategy", "BERT")
    if strategy in ("forecast", "global_forecast"):
        chosen = {"kind": "forecast", "time_tokens": original.get("forecast_num_tokens", 1)}
    elif strategy in ("BERT", "temporal_interpolation"):
        chosen = {"kind": strategy}
    else:
        raise ConfigError(f"BERT_strategy: {strategy!r} is not supported")
    names = [entry[0] for entry in _list(original, "fields")]
    synced = bool(original.get("BERT_fields_synced", False)) and len(names) > 1
    return {"masking": {"fields": dict.fromkeys(names, chosen), "synced": synced}}


def model_config(original: Mapping[str, Any]) -> ModelConfig:
    """The ModelConfig that computes what the original configuration's network computes."""
    _check_keys(original)
    predicted = _predicted(original)
    fields = [_field(entry, original, predicted) for entry in _list(original, "fields")]
    return model_config_from_dict({"fields": fields})


def _check_keys(original: Mapping[str, Any]) -> None:
    for key, value in original.items():
        if key in RUN_ONLY_KEYS or key in TRANSLATED_KEYS:
            continue
        if key not in FIXED_KEYS:
            raise ConfigError(f"{key}: unknown option (value {value!r}); cannot import it")
        if value != FIXED_KEYS[key]:
            raise ConfigError(
                f"{key}: {value!r} is not supported (only {FIXED_KEYS[key]!r} can be imported)"
            )
    for key in ("fields", "fields_prediction", "encoder_num_layers", "encoder_num_heads"):
        if key not in original:
            raise ConfigError(f"{key}: missing from the model configuration")


def _predicted(original: Mapping[str, Any]) -> list[str]:
    entries = _list(original, "fields_prediction")
    names = [entry[0] for entry in entries if isinstance(entry, Sequence) and entry]
    if len(names) != len(entries) or not names:
        raise ConfigError(f"fields_prediction: {entries!r} is not a list of [name, weight]")
    return names


def _list(original: Mapping[str, Any], key: str) -> list[Any]:
    value = original.get(key)
    if not isinstance(value, list):
        raise ConfigError(f"{key}: {value!r} is not a list")
    return value


def _field(entry: Any, original: Mapping[str, Any], predicted: list[str]) -> dict[str, Any]:
    """One `[name, [1, width, coupled, device, ...], levels, counts, size, ratios, norm]`."""
    if not isinstance(entry, list) or len(entry) < 5 or not isinstance(entry[1], list):
        raise ConfigError(f"fields: {entry!r} is not [name, [1, width, coupled, ...], ...]")
    name, (_, width, coupled, *_rest) = entry[0], entry[1]
    encoder_heads = original["encoder_num_heads"]
    decoder_heads = original.get("decoder_num_heads", encoder_heads)
    ratio = original.get("decoder_cross_att_ratio", 0.5)
    coupling = original.get("coupling_num_heads_per_field", 1)
    if coupled and coupling != 1:
        raise ConfigError(
            f"coupling_num_heads_per_field: {coupling!r} is not supported with coupled fields "
            "(only 1 can be imported)"
        )
    return {
        "name": name,
        "levels": entry[2],
        "token_count": entry[3],
        "token_size": entry[4],
        "normalisation": "local" if len(entry) > 6 else "global",
        "embed_dim": width,
        "num_heads": encoder_heads,
        "encoder_layers": original["encoder_num_layers"],
        "decoder_layers": original.get("decoder_num_layers", original["encoder_num_layers"]),
        "decoder_num_heads": decoder_heads,
        "decoder_cross_heads": int(decoder_heads * ratio),
        "tail_heads": original.get("net_tail_num_nets", 1),
        "dropout": original.get("dropout_rate", 0.0),
        "qk_norm": bool(original.get("with_qk_lnorm", False)),
        "token_info_width": original.get("size_token_info_net", 16),
        "coupling_heads": coupling,
        "couples_with": list(coupled),
        "predicted": name in predicted,
        **ORIGINAL_OPTIONS,
    }
