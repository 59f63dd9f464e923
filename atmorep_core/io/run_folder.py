"""The output folder of a product run, made safe to start from cron.

- One writer at a time: a lock file in the folder; a second run on the same folder stops at once
  with StoreBusyError (exit code 5) instead of waiting or interleaving files.
- Nothing half-written under a final name: every output is written to a temporary name and
  renamed (`io.product.atomic_output`), and the manifest `STEM.json` is written last. A run
  killed in between leaves no manifest, so the next run redoes it.
- Idempotent: a rerun of the same request (same checkpoint, input, options) whose manifest and
  outputs are all there does nothing and reports the earlier run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from atmorep_core.errors import StoreBusyError
from atmorep_core.io.product import atomic_output

LOCK_NAME = ".atmorep.lock"


@dataclass(frozen=True)
class ProductRun:
    """One product's outputs `folder/STEM.*` and the request that determines them."""

    folder: Path
    stem: str
    request: dict[str, Any]  # plain JSON values

    @property
    def manifest(self) -> Path:
        return self.folder / f"{self.stem}.json"

    def path(self, suffix: str) -> Path:
        """An output's final path, e.g. `path(".grib2")`."""
        return self.folder / f"{self.stem}{suffix}"

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the folder's lock; StoreBusyError if another run holds it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.folder / LOCK_NAME)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise StoreBusyError(
                f"{self.folder}: another atmorep run is writing there ({LOCK_NAME} is held)"
            ) from None
        try:
            yield
        finally:
            lock.release()

    def up_to_date(self) -> dict[str, Any] | None:
        """The earlier run's manifest if it answered this request and its outputs are intact."""
        try:
            manifest: dict[str, Any] = json.loads(self.manifest.read_text())
        except (OSError, ValueError):
            return None
        if manifest.get("request") != _plain(self.request):
            return None
        for name, digest in manifest.get("outputs", {}).items():
            output = self.folder / name
            if not output.is_file() or _sha256(output) != digest:
                return None
        return manifest

    def finish(self, outputs: Sequence[Path], summary: dict[str, Any]) -> dict[str, Any]:
        """Record the outputs (with checksums) and the summary in the manifest, atomically."""
        manifest = {
            "request": _plain(self.request),
            "outputs": {str(p.relative_to(self.folder)): _sha256(p) for p in outputs},
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            **summary,
        }
        with atomic_output(self.manifest) as temporary:
            temporary.write_text(json.dumps(manifest, indent=1))
        return manifest


def _plain(request: dict[str, Any]) -> Any:
    """The request as JSON would give it back (tuples become lists), for comparison."""
    return json.loads(json.dumps(request, default=str))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
