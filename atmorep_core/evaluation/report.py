"""An evaluation as plain data (the JSON), as a CSV table, and the list of what it wrote."""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from atmorep_core.evaluation.evaluate import Evaluation
from atmorep_core.evaluation.scoring import ScoreRow
from atmorep_core.io.product import atomic_output

CSV_NAME = "scores.csv"


def as_dict(evaluation: Evaluation) -> dict[str, Any]:
    """Everything the evaluation found, as JSON values (None where a score does not apply)."""
    window = evaluation.window
    return {
        "products": [str(p) for p in evaluation.products],
        "truth": str(evaluation.truth),
        "climatology": {
            "first": None if window.first is None else str(window.first),
            "last": str(window.last),
            "source": window.source,
        },
        "scores": [_plain(asdict(row)) for row in evaluation.rows],
        "rank_histograms": [
            {"field": f, "level": level, "lead_h": lead, "members": m, "counts": counts.tolist()}
            for (f, level, lead, m), counts in sorted(evaluation.ranks.items())
        ],
        "notes": evaluation.notes,
    }


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}


def write_csv(rows: list[ScoreRow], path: Path) -> Path:
    """One line per field, level, lead and source; empty cells where a score does not apply."""
    with atomic_output(path) as temporary, open(temporary, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=[f.name for f in fields(ScoreRow)])
        writer.writeheader()
        writer.writerows(_plain(asdict(row)) for row in rows)
    return path
