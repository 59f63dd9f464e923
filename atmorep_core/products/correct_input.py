"""Which messages of an input GRIB file feed which field, level and time of a checkpoint.

The multiformer needs every field it was trained with, on every one of its levels, at every time
it is shown; whatever the file holds beyond that (other parameters, levels, a surface field) is
no input of the model and passes through a correction unchanged. Anything the checkpoint needs
and the file lacks is refused with one line naming it, as is a value the model would be shown
outside its field's physically plausible range (`data.plausibility`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from atmorep_core.data import plausibility
from atmorep_core.errors import ConfigError, InputDataError
from atmorep_core.fields import CATALOGUE, lookup
from atmorep_core.io.grib_messages import read_points, read_values
from atmorep_core.io.grib_scan import MessageHeader
from atmorep_core.regrid import Points

_BY_PARAM = {f.param_id: f.name for f in CATALOGUE}
_BY_SHORT = {f.short_name: f.name for f in CATALOGUE}


@dataclass(frozen=True)
class Need:
    """What the model needs of one field: its level type and levels."""

    level_type: str
    levels: tuple[int, ...]


@dataclass(frozen=True)
class Selection:
    """The model's input messages: by field, level and valid time, on one grid."""

    path: Path
    times: tuple[datetime, ...]  # sorted valid times
    messages: dict[tuple[str, int, datetime], MessageHeader]
    points: Points

    def message(self, name: str, level: int, time: datetime) -> MessageHeader:
        return self.messages[(name, level, time)]


def choose_fields(checkpoint_fields: Sequence[str], asked: Sequence[str] | None) -> tuple[str, ...]:
    """The canonical names of the fields to correct; ConfigError naming any the model lacks."""
    if not asked:
        return tuple(checkpoint_fields)
    names = [lookup(a).name for a in asked]
    lacking = [a for a, n in zip(asked, names, strict=True) if n not in checkpoint_fields]
    if lacking:
        raise ConfigError(
            f"--fields: the checkpoint has no {', '.join(lacking)} "
            f"(it has {', '.join(checkpoint_fields)})"
        )
    return tuple(dict.fromkeys(names))


def select(
    path: Path,
    messages: Sequence[MessageHeader],
    needs: Mapping[str, Need],
    *,
    allow_implausible: bool = False,
) -> Selection:
    """The messages the model needs; InputDataError naming the fields, levels or times missing,
    or a value outside its field's plausible range (unless `allow_implausible`)."""
    chosen: dict[tuple[str, int, datetime], MessageHeader] = {}
    for message in messages:
        name = _BY_PARAM.get(message.param_id) or _BY_SHORT.get(message.short_name)
        need = needs.get(name or "")
        if name and need and message.level_type == need.level_type and message.level in need.levels:
            key = (name, message.level, _valid_datetime(message))
            _check_message(message, chosen.get(key))
            chosen[key] = message
    _check_levels(path, messages, chosen, needs)
    times = tuple(sorted({time for _, _, time in chosen}))
    _check_times(path, chosen, needs, times)
    grids = {m.grid_key for m in chosen.values()}
    if len(grids) > 1:
        raise InputDataError(f"{path}: the model's fields come on {len(grids)} different grids")
    if not allow_implausible:
        _check_plausible(path, chosen)
    first = next(iter(chosen.values()))
    return Selection(path, times, chosen, read_points(path, first))


def _check_plausible(path: Path, chosen: Mapping[tuple[str, int, datetime], MessageHeader]) -> None:
    """Every value the model is shown within its field's physically plausible range."""
    for (name, level, time), message in sorted(chosen.items(), key=lambda item: item[1].index):
        where = f"{message.where}, level {level}, {time:%Y-%m-%dT%H:%M}"
        plausibility.check(read_values(path, message), lookup(name), where)


def _valid_datetime(message: MessageHeader) -> datetime:
    """A message's valid time as a naive UTC datetime."""
    return datetime.fromisoformat(str(message.valid_time))


def _check_message(message: MessageHeader, earlier: MessageHeader | None) -> None:
    where = message.where
    if earlier is not None:
        what = "ensemble members" if earlier.member != message.member else "duplicates"
        when = f"{_valid_datetime(message):%Y-%m-%dT%H}"
        raise InputDataError(
            f"{where}: {message.short_name} level {message.level} at {when} again ({what}); "
            "correct one member per file"
        )
    if message.missing:
        raise InputDataError(f"{where}: {message.missing} missing values (bitmap) in a model field")


def _check_levels(
    path: Path,
    messages: Sequence[MessageHeader],
    chosen: Mapping[tuple[str, int, datetime], MessageHeader],
    needs: Mapping[str, Need],
) -> None:
    for name, need in needs.items():
        have = sorted({level for field, level, _ in chosen if field == name})
        if len(have) == len(need.levels):
            continue
        short = lookup(name).short_name
        held = sorted(
            {m.level for m in messages if m.short_name == short and m.level_type == need.level_type}
        )
        missing = [lv for lv in need.levels if lv not in have]
        raise InputDataError(
            f"{path.name}: the checkpoint needs {name} ({short}) on {need.level_type} levels "
            f"{_join(need.levels)}; the file has {_held(held, need.level_type)}, "
            f"so levels {_join(missing)} are missing"
        )


def _held(levels: Sequence[int], level_type: str) -> str:
    return f"levels {_join(levels)}" if levels else f"none on {level_type} levels"


def _check_times(
    path: Path,
    chosen: Mapping[tuple[str, int, datetime], MessageHeader],
    needs: Mapping[str, Need],
    times: Sequence[datetime],
) -> None:
    for time in times:
        gaps = [
            f"{name} level {level}"
            for name, need in needs.items()
            for level in need.levels
            if (name, level, time) not in chosen
        ]
        if gaps:
            raise InputDataError(f"{path.name}: at {time:%Y-%m-%dT%H:%M} {', '.join(gaps)} missing")


def _join(levels: Sequence[int]) -> str:
    return ", ".join(str(level) for level in levels)
