"""Parsers of the option values that product commands share: times, durations, areas."""

from __future__ import annotations

import re
from datetime import datetime

from atmorep_core.errors import ConfigError

_INIT_FORMATS = ("%Y-%m-%dT%H", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y%m%d%H", "%Y-%m-%d")
_DURATION = re.compile(r"^\s*(\d+)\s*([hd]?)\s*$")


def parse_time(text: str, option: str) -> datetime:
    """A UTC time as 2020-01-10T12, 2020-01-10T12:00, 2020011012 or 2020-01-10."""
    for layout in _INIT_FORMATS:
        try:
            return datetime.strptime(text.strip().removesuffix("Z"), layout)
        except ValueError:
            continue
    raise ConfigError(f"{option} {text!r}: expected a UTC time such as 2020-01-10T12")


def parse_hours(text: str, option: str) -> int:
    """Hours from 24h, 2d or a plain number of hours."""
    match = _DURATION.match(text)
    if match is None:
        raise ConfigError(f"{option} {text!r}: expected hours or days such as 24h or 2d")
    number, unit = int(match.group(1)), match.group(2)
    return number * 24 if unit == "d" else number


def parse_area(text: str) -> tuple[float, float, float, float]:
    """--area N/W/S/E in degrees (as MARS writes it)."""
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
