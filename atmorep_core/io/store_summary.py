"""What a store holds, as plain data for tables and JSON (`atmorep info`): what is committed,
also while another run ingests into it (`updating`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from atmorep_core.io.store import Store


@dataclass(frozen=True)
class LevelStats:
    level: int
    mean: float
    std: float


@dataclass(frozen=True)
class FieldSummary:
    name: str
    short_name: str
    param_id: int
    units: str
    level_type: str
    member: str
    times: int
    first_time: str | None
    last_time: str | None
    time_step_hours: float | None
    months: list[int]
    levels: list[LevelStats]
    accumulation_hours: float | None  # accumulated fields: the period each value sums
    missing_points: int  # grid points missing (NaN) at some time, any level


@dataclass(frozen=True)
class StoreSummary:
    path: str
    format_version: int
    grid: dict[str, Any]
    grid_description: str
    size_bytes: int
    sources: int
    fields: list[FieldSummary]
    updating: bool  # an ingest is running (or awaits its rollback): shown is what is committed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(store: Store) -> StoreSummary:
    return StoreSummary(
        path=str(store.path),
        format_version=int(store.attributes["format_version"]),
        grid=store.grid.to_attrs(),
        grid_description=store.grid.describe(),
        size_bytes=_size_on_disk(store.path),
        sources=len(store.sources),
        fields=[_field_summary(store, name) for name in store.fields],
        updating=store.updating,
    )


def _field_summary(store: Store, name: str) -> FieldSummary:
    arrays = store.field(name)
    times = arrays.times
    mean, std = arrays.global_norm()
    step = arrays.time_step
    mask = arrays.missing_mask()
    accumulation = arrays.meta.accumulation_s
    return FieldSummary(
        name=name,
        short_name=arrays.meta.short_name,
        param_id=arrays.meta.param_id,
        units=arrays.meta.units,
        level_type=arrays.meta.level_type,
        member=arrays.meta.member,
        times=len(times),
        first_time=str(times[0]) if len(times) else None,
        last_time=str(times[-1]) if len(times) else None,
        time_step_hours=None if step is None else float(step.astype("int64")) / 3600.0,
        months=[int(m) for m in arrays.months],
        levels=[
            LevelStats(int(level), float(m), float(s))
            for level, m, s in zip(arrays.levels, mean, std, strict=True)
        ],
        accumulation_hours=None if accumulation is None else accumulation / 3600.0,
        missing_points=0 if mask is None else int(mask.any(axis=0).sum()),
    )


def _size_on_disk(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
