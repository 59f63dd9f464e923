"""`atmorep model RECIPE`: the multiformer a recipe describes and its parameter counts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
import yaml

from atmorep_cli.console import out
from atmorep_cli.tables import print_model
from atmorep_core.errors import ConfigError
from atmorep_core.model.config import ModelConfig, Recipe, recipe_file


def command(
    recipe: Path = typer.Argument(
        ..., help="A recipe YAML with a 'model:' section, or a run folder.", resolve_path=True
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Resolved architecture and parameter counts of a recipe's model (no weights allocated)."""
    config = Recipe.from_dict(_read_yaml(recipe_file(recipe))).model
    from atmorep_core.model.multiformer import count_parameters  # torch: seconds to import

    summary = _summary(config, count_parameters(config))
    if as_json:
        out.print_json(json.dumps(summary))
    else:
        print_model(summary)


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except OSError as error:
        raise ConfigError(f"recipe: cannot read {path} ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise ConfigError(
            f"recipe: {path} is not valid YAML ({error})".replace("\n", " ")
        ) from None


def _summary(config: ModelConfig, counts: dict[str, int]) -> dict[str, Any]:
    fields = [
        {
            "name": f.name,
            "levels": list(f.levels),
            "token_count": list(f.token_count),
            "token_size": list(f.token_size),
            "embed_dim": f.embed_dim,
            "num_heads": f.num_heads,
            "encoder_layers": f.encoder_layers,
            "decoder_layers": f.decoder_layers,
            "tail_heads": f.tail_heads,
            "couples_with": list(config.coupled(f.name)),
            "parameters": counts[f.name],
        }
        for f in config.fields
    ]
    return {"fields": fields, "total_parameters": counts["total"]}
