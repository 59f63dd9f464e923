"""Parsers of the option values that product commands share: times, durations, areas."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from atmorep_core.errors import ConfigError

# MARS and ai-models write dates as YYYYMMDD and YYYYMMDDHH; fromisoformat refuses the second
# and, before Python 3.11, the first. Read both explicitly, whatever the Python.
_COMPACT = {8: "%Y%m%d", 10: "%Y%m%d%H"}
_DURATION = re.compile(r"^\s*(\d+)\s*([hd]?)\s*$")
# The help of every time option: what `parse_time` reads.
TIME_FORMS = (
    "on the hour: ISO 8601 such as 2019-03-22T12, '2019-03-22 12:00' or 20190322T1200 (Z or an "
    "offset such as +02:00 converted to UTC), or YYYYMMDD and YYYYMMDDHH"
)


def parse_time(text: str, option: str) -> datetime:
    """A time on the hour as naive UTC, from ISO 8601 as `datetime.fromisoformat` reads it
    (2019-03-22, 2019-03-22T12, 2019-03-22 12:00, 20190322T1200, ...Z, an offset such as +02:00,
    converted to UTC) or YYYYMMDD and YYYYMMDDHH; ConfigError naming the option otherwise."""
    stripped = text.strip()
    try:
        if stripped.isdigit() and len(stripped) in _COMPACT:
            time = datetime.strptime(stripped, _COMPACT[len(stripped)])
        else:
            time = datetime.fromisoformat(stripped)
    except ValueError:
        raise ConfigError(
            f"{option} {text!r}: expected a UTC time such as 2019-03-22T12, 2019-03-22 12:00, "
            "2019032212 or 20190322"
        ) from None
    if time.tzinfo is not None:
        time = time.astimezone(UTC).replace(tzinfo=None)
    if time.minute or time.second or time.microsecond:
        raise ConfigError(
            f"{option} {text!r}: the model steps in whole hours; give a time on the hour, "
            f"e.g. {time:%Y-%m-%dT%H}"
        )
    return time


def resolve_patterns(patterns: list[str]) -> list[str]:
    """File names or glob patterns made absolute (`..`, `~` and symlinks resolved); a pattern's
    wildcards are kept for the glob."""
    return [str(Path(pattern).expanduser().resolve()) for pattern in patterns]


def parse_hours(text: str, option: str) -> int:
    """Hours from 24h, 2d or a plain number of hours."""
    match = _DURATION.match(text)
    if match is None:
        raise ConfigError(f"{option} {text!r}: expected hours or days such as 24h or 2d")
    number, unit = int(match.group(1)), match.group(2)
    return number * 24 if unit == "d" else number


def parse_area(text: str | None) -> tuple[float, float, float, float] | None:
    """--area N/W/S/E in degrees (as MARS writes it); None: the whole grid."""
    if text is None:
        return None
    parts = text.split("/")
    try:
        north, west, south, east = (float(p) for p in parts)
    except ValueError:
        raise ConfigError(
            f"--area {text!r}: expected N/W/S/E in degrees, e.g. 60/-15/45/10"
        ) from None
    return north, west, south, east


def hours_after(start: datetime, text: str, option: str) -> int:
    """A UTC time given as an option, in whole hours after `start` (a product's lead)."""
    hours = (parse_time(text, option) - start).total_seconds() / 3600
    if hours < 0 or hours != int(hours):
        raise ConfigError(f"{option} {text}: not a whole number of hours after {start:%Y-%m-%dT%H}")
    return int(hours)


def parse_assignments(texts: list[str], option: str) -> dict[str, float]:
    """KEY=NUMBER pairs, e.g. `--set year=2050` -> {"year": 2050.0}."""
    found = {}
    for text in texts:
        key, _, value = text.partition("=")
        try:
            found[key.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"{option} {text!r}: expected KEY=NUMBER, e.g. year=2050") from None
    return found
