"""PNG figures of an evaluation: scores against lead, maps of the error, rank histograms.

Drawn like the product maps (`plotting.py`): matplotlib's object API on an Agg canvas, each file
written to a temporary name and renamed.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from atmorep_core.evaluation.evaluate import Evaluation
from atmorep_core.evaluation.scoring import MODEL, ScoreRow
from atmorep_core.fields import lookup
from atmorep_core.io.product import atomic_output
from atmorep_core.plotting import _draw_map  # the product maps' look: colours, coastlines, axes

PANELS = (("rmse", "RMSE"), ("crps", "CRPS"), ("bias", "bias (forecast - truth)"), ("acc", "ACC"))


def plot_evaluation(evaluation: Evaluation, folder: Path) -> list[Path]:
    """Every figure, into `folder`; returns their paths."""
    return (
        plot_scores(evaluation.rows, folder)
        + plot_error_maps(evaluation, folder)
        + plot_rank_histograms(evaluation, folder)
    )


def plot_scores(rows: list[ScoreRow], folder: Path) -> list[Path]:
    """One figure per field and level: each score against lead, a line per source."""
    groups: dict[tuple[str, int], list[ScoreRow]] = defaultdict(list)
    for row in rows:
        groups[(row.field, row.level)].append(row)
    written = []
    for (name, level), group in groups.items():
        figure = _figure(2, 2)
        for axes, (score, label) in zip(figure.axes, PANELS, strict=True):
            _score_panel(axes, group, score, label)
        figure.suptitle(f"{name}, level {level}: {group[0].inits} init(s)")
        written.append(_save(figure, folder / f"scores_{name}_{level}.png"))
    return written


def _score_panel(axes: Axes, rows: list[ScoreRow], score: str, label: str) -> None:
    for i, source in enumerate(dict.fromkeys(row.source for row in rows)):
        mine = [r for r in rows if r.source == source and getattr(r, score) is not None]
        leads, colour = [r.lead_h for r in mine], f"C{i}"  # one colour per source in all panels
        axes.plot(leads, [getattr(r, score) for r in mine], "o-", color=colour, label=source)
        if score == "rmse" and source == MODEL and mine and mine[0].spread is not None:
            spreads = [float(r.spread or 0.0) for r in mine]
            axes.plot(leads, spreads, "--", color=colour, label="model spread")
    axes.set_xlabel("lead (h)")
    axes.set_title(label)
    axes.legend(fontsize="small")


def plot_error_maps(evaluation: Evaluation, folder: Path) -> list[Path]:
    """Per mapped field, level and lead: mean error and RMS error of the ensemble mean."""
    maps, written = evaluation.maps, []
    for key in sorted(maps.counts):
        name, level, lead = key
        mean, rms = maps.mean_and_rms(key)
        figure = _figure(1, 2)
        for axes, values, title, is_spread in zip(
            figure.axes, (mean, rms), ("mean error", "RMS error"), (False, True), strict=True
        ):
            mesh = _draw_map(axes, maps.grids[key], values, is_spread)
            figure.colorbar(mesh, ax=axes, shrink=0.9, label=lookup(name).units)
            axes.set_title(title)
        figure.suptitle(f"{name}, level {level}, lead {lead} h: {maps.counts[key]} init(s)")
        written.append(_save(figure, folder / f"error_{name}_{level}_{lead:03d}h.png"))
    return written


def plot_rank_histograms(evaluation: Evaluation, folder: Path) -> list[Path]:
    """Per field and level: the model's rank histogram over all leads, 1 = flat (reliable)."""
    pooled: dict[tuple[str, int, int], np.ndarray] = {}
    for (name, level, _lead, members), counts in evaluation.ranks.items():
        pooled[(name, level, members)] = pooled.get((name, level, members), 0) + counts
    written = []
    for (name, level, members), counts in pooled.items():
        figure = _figure(1, 1)
        axes = figure.axes[0]
        axes.bar(np.arange(len(counts)), counts * len(counts) / counts.sum())
        axes.axhline(1.0, color="black", linewidth=0.8)
        axes.set_xlabel("rank of the truth among the members")
        axes.set_ylabel("frequency x (members + 1)")
        axes.set_title(f"{name}, level {level}: rank histogram of {members} members, all leads")
        written.append(_save(figure, folder / f"ranks_{name}_{level}_{members}m.png"))
    return written


def _figure(rows: int, columns: int) -> Figure:
    figure = Figure(figsize=(5.5 * columns, 4.0 * rows), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    figure.subplots(rows, columns, squeeze=False)
    return figure


def _save(figure: Figure, path: Path) -> Path:
    with atomic_output(path) as temporary:
        figure.savefig(temporary, format="png")
    return path
