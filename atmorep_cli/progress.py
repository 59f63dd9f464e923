"""A rich progress bar that the core's `progress(message, fraction)` callbacks can drive."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from atmorep_cli.console import err


@contextmanager
def progress_bar(title: str, quiet: bool = False) -> Iterator[Callable[[str, float], None]]:
    """Yields a callback taking (what is being done, fraction done in [0, 1]). No bar unless
    stderr is a terminal: in cron mail and logs a failure stays one line."""
    if quiet or not err.is_terminal:
        yield lambda message, fraction: None
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[detail]}"),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(title, total=1.0, detail="")
        yield lambda message, fraction: bar.update(task, completed=fraction, detail=message)


@contextmanager
def stage_bars() -> Iterator[Callable[[str, float], None]]:
    """As `progress_bar`, with a bar per stage (the callback's first argument names it)."""
    columns = (TextColumn("{task.description:>9}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, disable=not err.is_terminal) as bar:
        tasks: dict[str, TaskID] = {}

        def show(stage: str, fraction: float) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=1.0)
            bar.update(tasks[stage], completed=fraction)

        yield show
