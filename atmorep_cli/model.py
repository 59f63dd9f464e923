"""`atmorep model RECIPE`: the multiformer a recipe describes and its parameter counts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
import yaml
from rich import box
from rich.table import Table

from atmorep_cli.console import out
from atmorep_core.errors import ConfigError
from atmorep_core.model.config import ModelConfig, Recipe

# L: levels; tokens: per level (time x lat x lon); size: points per token; D: width;
# layers: encoder + decoder; E: tail heads (ensemble members).
_COLUMNS = ("field", "L", "tokens", "size", "D", "heads", "layers", "E", "param")


def command(
    recipe: Path = typer.Argument(
        ..., help="A recipe YAML with a 'model:' section.", resolve_path=True
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Resolved architecture and parameter counts of a recipe's model (no weights allocated)."""
    config = Recipe.from_dict(_read_yaml(recipe)).model
    from atmorep_core.model.multiformer import count_parameters  # torch: seconds to import

    summary = _summary(config, count_parameters(config))
    if as_json:
        out.print_json(json.dumps(summary))
    else:
        _render(summary)


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


def _render(summary: dict[str, Any]) -> None:
    table = Table(title="multiformer", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in _COLUMNS:
        table.add_column(column, justify="left" if column == "field" else "right", no_wrap=True)
    for f in summary["fields"]:
        table.add_row(
            f["name"], str(len(f["levels"])), "x".join(map(str, f["token_count"])),
            "x".join(map(str, f["token_size"])), str(f["embed_dim"]), str(f["num_heads"]),
            f"{f['encoder_layers']}+{f['decoder_layers']}", str(f["tail_heads"]),
            f"{f['parameters'] / 1e6:.3g}M",
        )  # fmt: skip
    out.print(table)
    # The level lists would not fit an 80-column table: one line per distinct list instead.
    by_levels: dict[str, list[str]] = {}
    for f in summary["fields"]:
        by_levels.setdefault(",".join(map(str, f["levels"])), []).append(f["name"])
    for levels, names in by_levels.items():
        out.print(f"levels {levels}: {', '.join(names)}")
    total = summary["total_parameters"]
    out.print(f"total parameters: {total:,} ({total / 1e9:.3f}e9)")
