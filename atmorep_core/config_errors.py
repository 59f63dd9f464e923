"""Validating a recipe section with pydantic, so that an error names the dotted key at fault."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from atmorep_core.errors import ConfigError

Section = TypeVar("Section", bound=BaseModel)
# Our validators start their message with the key they reject, relative to their model.
_LEADING_KEY = re.compile(r"^([a-z_][a-z_0-9.]*): ")


def validate_section(
    cls: type[Section],
    data: Any,
    prefix: str,
    key: Callable[[Sequence[int | str]], list[str]] | None = None,
) -> Section:
    """`cls` from `data`; a ConfigError "<prefix><dotted key>: <reason>" for the first error.

    `key` maps pydantic's error location to the key as the recipe spells it (default: as is)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'recipe'}: expected a mapping of keys")
    try:
        return cls.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        parts = (key or _as_is)(first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        inner = _LEADING_KEY.match(message)
        if inner:
            parts.append(inner.group(1))
            message = message[inner.end() :]
        where = prefix + ".".join(parts) if parts else prefix.rstrip(".") or "recipe"
        raise ConfigError(f"{where}: {message}") from None


def _as_is(location: Sequence[int | str]) -> list[str]:
    return [str(part) for part in location]
