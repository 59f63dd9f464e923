"""The rich tables that commands print: a model's fields and parameters (`model`), and scores
beside the baselines (`evaluate`)."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.table import Table

from atmorep_cli.console import out

# L: levels; tokens: per level (time x lat x lon); size: points per token; D: width;
# layers: encoder + decoder; E: tail heads (ensemble members).
_COLUMNS = ("field", "L", "tokens", "size", "D", "heads", "layers", "E", "param")


def print_model(summary: dict[str, Any]) -> None:
    """A line per field, the level lists, and the total parameter count."""
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


def score_table(scores: list[dict[str, Any]]) -> Table:
    """A line per field, level, lead and source; the lowest RMSE and CRPS of a lead in bold."""
    table = Table(title="latitude-weighted; CRPS fair; SSR spread/skill, 1 = reliable")
    for column in ("field", "level", "lead", "source"):
        table.add_column(column, no_wrap=True)
    for column in ("RMSE", "CRPS", "bias", "ACC", "SSR"):
        table.add_column(column, justify="right")
    previous = None
    for row in scores:
        cell = (row["field"], row["level"], row["lead_h"])
        if previous is not None and cell != previous:
            table.add_section()
        same = [r for r in scores if (r["field"], r["level"], r["lead_h"]) == cell]
        table.add_row(
            *(str(v) for v in cell[:2]), f"{cell[2]} h", row["source"],
            *(_best(row, same, score) for score in ("rmse", "crps")),
            *(_number(row[score]) for score in ("bias", "acc", "spread_skill")),
        )  # fmt: skip
        previous = cell
    return table


def _best(row: dict[str, Any], same: list[dict[str, Any]], score: str) -> str:
    text = _number(row[score])
    return f"[bold]{text}[/]" if row[score] == min(r[score] for r in same) else text


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"
