"""`prepare`'s options: the files its patterns name, and what to take from them."""

from __future__ import annotations

import glob
from pathlib import Path

from atmorep_core import fields as catalogue
from atmorep_core.data.ingest_plan import MEMBER_MEAN, IngestOptions
from atmorep_core.errors import ConfigError, InputDataError


def ingest_options(
    *,
    fields: str | None,
    levels: str | None,
    member: str | None,
    resolution: float | None,
    allow_implausible: bool,
) -> IngestOptions:
    """--fields, --levels, --member, --resolution and --allow-implausible, each checked."""
    return IngestOptions(
        fields=_fields(fields),
        levels=_levels(levels),
        member=_member(member),
        resolution_deg=resolution,
        allow_implausible=allow_implausible,
    )


def expand_patterns(patterns: list[str]) -> list[Path]:
    """The files each name or glob pattern names (none: InputDataError)."""
    paths: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise InputDataError(f"no file matches {pattern!r}")
        paths.extend(Path(m) for m in matches)
    return paths


def _fields(text: str | None) -> tuple[str, ...] | None:
    """The fields asked for, each known to the catalogue (an unknown name is an invalid option)."""
    if text is None:
        return None
    names = tuple(text.split(","))
    for name in names:
        try:
            catalogue.lookup(name)
        except InputDataError as unknown:
            raise ConfigError(f"--fields: {unknown}") from unknown
    return names


def _levels(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(level) for level in text.split(","))
    except ValueError as error:
        raise ConfigError(f"--levels: expected comma-separated integers, got {text!r}") from error


def _member(text: str | None) -> int | str | None:
    if text is None or text == MEMBER_MEAN:
        return text
    if not text.isdigit():
        raise ConfigError(f"--member: expected a number or 'mean', got {text!r}")
    return int(text)
