"""The embedded sample's GRIB files: which fields and levels, their names, and their messages.

ERA5-convention files (class ea, type an) one per field and month, and the IFS-like companion
(class od, stream oper, type fc, hourly steps) in one GRIB2 file per base time.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

import numpy as np

from atmorep_core.grid import LatLonGrid
from atmorep_core.io.grib_write import GribMessage, GribWriter

SAMPLE_FIELDS = (
    "vorticity",
    "divergence",
    "temperature",
    "velocity_u",
    "velocity_v",
    "velocity_z",
)
ERA5_LEVELS = (96, 105, 114, 123, 137)


def sample_file_name(name: str, year: int, month: int) -> str:
    return f"era5_{name}_y{year:04d}_m{month:02d}.grib"


def ifs_like_file_name(base: datetime) -> str:
    return f"ifs_fc_{base:%Y%m%dT%H}.grib2"


def frame_messages(
    values: np.ndarray, time: datetime, grid: LatLonGrid, step: int = 0, ifs_like: bool = False
) -> Iterator[GribMessage]:
    """The messages of one (field, level, lat, lon) frame: an analysis valid at `time`, or the
    IFS-like forecast from base `time` at `step` hours."""
    centre, kind = ("od", "fc") if ifs_like else ("ea", "an")
    for name, levels in zip(SAMPLE_FIELDS, values, strict=True):
        for level, level_values in zip(ERA5_LEVELS, levels, strict=True):
            yield GribMessage(
                name, "hybrid", level, time, level_values, grid, step_hours=step,
                ecmwf_class=centre, data_type=kind,
            )  # fmt: skip


def write_months(
    out_dir: Path, frames: Iterator[tuple[datetime, np.ndarray]], grid: LatLonGrid
) -> list[Path]:
    """One file per field and month; each is renamed into place when its month is complete."""
    written: list[Path] = []
    for (year, month), month_frames in itertools.groupby(
        frames, key=lambda frame: (frame[0].year, frame[0].month)
    ):
        paths = [out_dir / sample_file_name(name, year, month) for name in SAMPLE_FIELDS]
        with ExitStack() as stack:
            writers = {p.name: stack.enter_context(GribWriter(p)) for p in paths}
            for valid_time, values in month_frames:
                for message in frame_messages(values, valid_time, grid):
                    writers[sample_file_name(str(message.param), year, month)].write(message)
        written.extend(paths)
    return written
