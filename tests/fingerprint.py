"""A fingerprint of every file and folder under some roots: what a failed command must leave as
it found it (issue 14: the store, run or output folder identical before and after).

Two things are left out on purpose:
- an empty lock file (`.atmorep.lock`, `S.zarr.lock`): `filelock` locks with flock on that file
  and leaves the empty file behind by design; it holds no data and a later run reuses it;
- `atmorep.log`: the product commands' append-only run log, where a failed run records its
  command and error by design (for operators reading what cron did overnight).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

LOG_NAME = "atmorep.log"


def tree_fingerprint(*roots: Path) -> dict[str, str]:
    """Path -> "dir", "link -> TARGET" or "SIZE SHA256" for each root and everything under it
    (a root that does not exist has no entry, so its creation shows)."""
    found: dict[str, str] = {}
    for root in roots:
        if root.exists() or root.is_symlink():
            found[str(root)] = _describe(root)
        if root.is_dir() and not root.is_symlink():
            for folder, names, files in os.walk(root):
                for name in sorted(names + files):
                    path = Path(folder, name)
                    if not _ignored(path):
                        found[str(path)] = _describe(path)
    return found


def _ignored(path: Path) -> bool:
    if path.is_symlink() or not path.is_file():
        return False
    empty_lock = path.suffix == ".lock" and path.stat().st_size == 0
    return empty_lock or path.name == LOG_NAME


def _describe(path: Path) -> str:
    if path.is_symlink():
        return f"link -> {os.readlink(path)}"
    if path.is_dir():
        return "dir"
    with open(path, "rb") as stream:
        digest = hashlib.file_digest(stream, "sha256").hexdigest()
    return f"{path.stat().st_size} {digest}"


def changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """What differs, one line per path, for an assertion message."""
    return [
        f"{path}: {before.get(path, 'absent')} -> {after.get(path, 'absent')}"
        for path in sorted(before.keys() | after.keys())
        if before.get(path) != after.get(path)
    ]
