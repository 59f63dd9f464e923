"""`atmorep train RECIPE.yaml --run-dir RUN`: train the multiformer (under torchrun: DDP)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from atmorep_cli.console import err, out
from atmorep_core.errors import ConfigError

if TYPE_CHECKING:
    from atmorep_core.training.trainer import StepReport


def command(
    recipe: Path = typer.Argument(
        ..., help="Recipe with model, data and training sections.", resolve_path=True
    ),
    run: Path = typer.Option(
        ..., "--run-dir", help="Run folder: checkpoints, metrics, recipe.", resolve_path=True
    ),
    overrides: list[str] = typer.Option([], "--set", help="Override a recipe key: key=value."),
    resume: bool = typer.Option(
        False, help="Continue from the run's latest checkpoint (none yet: start at step 0)."
    ),
    restart: bool = typer.Option(
        False, help="Clear the run folder's checkpoints, metrics and logs, then start at step 0."
    ),
    init_field: list[str] = typer.Option(
        [], "--init-field", help="Start a field from a pre-trained run: name=RUN_DIR."
    ),
    device: str | None = typer.Option(None, help="cpu, cuda; default: cuda when available."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary at the end."),
) -> None:
    """Train (or resume, or assemble pre-trained fields) and write checkpoints to the run.

    A run folder holds one run: a folder with checkpoints is refused (exit 2) unless --resume
    continues them or --restart clears them first.
    """
    # Imported here: torch takes seconds to import, and the other commands do without it.
    from atmorep_core.training import recipe as recipes
    from atmorep_core.training.trainer import plan_start, train

    resolved = recipes.load(recipe, overrides)
    start = plan_start(run, resume, restart)
    if start.note:
        err.print(f"[yellow]note:[/] {start.note}", highlight=False, soft_wrap=True)
    sources = dict(_pair(item) for item in init_field)
    columns = (
        TextColumn("[bold]train"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), TimeRemainingColumn(),
    )  # fmt: skip
    with Progress(*columns, console=err, disable=as_json or not err.is_terminal) as bar:
        task = bar.add_task("train", total=resolved.training.steps, detail="")

        def show(report: StepReport) -> None:
            fields = " ".join(f"{k} {v:.4f}" for k, v in report.field_losses.items())
            detail = f"loss {report.loss:.4f} ({fields}) {report.tokens_per_second:,.0f} tok/s"
            bar.update(task, completed=report.step, detail=detail)

        summary = train(resolved, run, start, sources, show, device)
    if as_json:
        out.print_json(json.dumps(
            {"run": str(summary.run), "first_step": summary.first_step,
             "last_step": summary.last_step, "final_loss": summary.final_loss,
             "validation": summary.validation}
        ))  # fmt: skip
    else:
        out.print(f"[green]trained[/] steps {summary.first_step}..{summary.last_step}, "
                  f"final loss {summary.final_loss:.4f}; checkpoints in {summary.run}")  # fmt: skip


def _pair(text: str) -> tuple[str, Path]:
    name, sep, folder = text.partition("=")
    if not sep or not name or not folder:
        raise ConfigError(f"--init-field {text!r}: expected name=RUN_DIR")
    return name, Path(folder).expanduser().resolve()  # as every path the user gives
