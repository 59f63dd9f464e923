"""Training metrics to CSV and to TensorBoard (`tensorboard --logdir RUN/tensorboard`).

Rows are appended as they come; a resumed run first drops the rows after its checkpoint, so the
file reads as if the run had never stopped.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter


class MetricsLog:
    """One CSV file of rows with a fixed set of columns (the first row's keys)."""

    def __init__(self, path: Path, resume_after_step: int | None = None) -> None:
        self.path = path
        self._columns: list[str] | None = None
        self._board: SummaryWriter | None = None
        if resume_after_step is None:
            path.unlink(missing_ok=True)
        elif path.exists():
            self._truncate(resume_after_step)
        self._board = _tensorboard(path.parent / "tensorboard", path.stem)

    def write(self, row: dict[str, Any]) -> None:
        if self._columns is None:
            self._columns = list(row)
        new_file = not self.path.exists()
        with open(self.path, "a", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=self._columns)
            if new_file:
                writer.writeheader()
            writer.writerow(row)
        if self._board is not None:
            # Text columns (strategy, field) name the series: validation/forecast/t2m/rmse.
            labels = [str(v) for v in row.values() if isinstance(v, str)]
            for key, value in row.items():
                if key != "step" and isinstance(value, float):
                    tag = "/".join([self.path.stem, *labels, key])
                    self._board.add_scalar(tag, value, int(row["step"]))

    def _truncate(self, last_step: int) -> None:
        with open(self.path, newline="") as stream:
            rows = list(csv.DictReader(stream))
        self.path.unlink()
        kept = [r for r in rows if int(r["step"]) <= last_step]
        for row in kept:
            self.write(row)

    def close(self) -> None:
        if self._board is not None:
            self._board.close()


def read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def _tensorboard(folder: Path, name: str) -> SummaryWriter:
    return SummaryWriter(str(folder / name))
