"""The output folder of a product run, made safe to start from cron.

- One writer at a time: a lock file in the folder; a second run on the same folder stops at once
  with StoreBusyError (exit code 5) instead of waiting or interleaving files.
- Committed together: a run writes every file into the hidden staging folder
  `.atmorep.staging/` (same layout, same file system) and `finish` moves them into place only
  when all are written and the manifest `STEM.json` is ready: first the earlier run's outputs
  are removed, then the manifest goes in, then the products. At no moment is there a file under
  a final name that the manifest beside it does not list with its checksum.
- Finished, not redone, after a kill: a run killed once its staged manifest was written has
  made every file whole (the manifest holds their checksums), so the next run on the folder
  completes its moves instead of computing again, and the products hold exactly the bytes the
  killed run made (a recomputation on the CPU can differ in the last bit from run to run).
  Before that point the run's computed products are kept in `computed` (`jobs.product_job`
  writes its files again from them).
- Left as it was: a run that fails (full disk, bad option, missing input) removes its staging
  folder, so the folder holds what it held before, apart from the empty lock file and the run
  log's lines. A run killed before its manifest was written leaves only staged files, which the
  next run on the folder removes.
- Idempotent: a rerun of the same request (same checkpoint, input, options) whose manifest and
  outputs are all there does nothing and reports the earlier run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from atmorep_core.errors import FileSystemError, StoreBusyError
from atmorep_core.io.filesystem import STAGING, ensure_folder, writing

LOCK_NAME = ".atmorep.lock"
COMPUTED = ".atmorep.computed"  # computed products until their files are committed


@dataclass(frozen=True)
class ProductRun:
    """One product's outputs `folder/STEM.*` and the request that determines them."""

    folder: Path
    stem: str
    request: dict[str, Any]  # plain JSON values

    @property
    def manifest(self) -> Path:
        return self.folder / f"{self.stem}.json"

    @property
    def staging(self) -> Path:
        """Where the run writes its files before `finish` moves them into `folder`."""
        return self.folder / STAGING

    @property
    def computed(self) -> Path:
        """Where the run keeps its computed products until its files are committed
        (`io.product_stash`), so that a killed run is finished from the same numbers."""
        return self.folder / COMPUTED / f"{self.stem}.npz"

    def drop_computed(self) -> None:
        """Remove the kept products (and their folder once empty)."""
        with writing(self.computed):
            self.computed.unlink(missing_ok=True)
            if self.computed.parent.is_dir() and not any(self.computed.parent.iterdir()):
                self.computed.parent.rmdir()

    @property
    def plain_request(self) -> Any:
        """The request as JSON gives it back (tuples become lists), for comparison."""
        return json.loads(json.dumps(self.request, default=str))

    def path(self, suffix: str) -> Path:
        """An output's final path, e.g. `path(".grib2")`."""
        return self.folder / f"{self.stem}{suffix}"

    def staged(self, suffix: str) -> Path:
        """Where the output `path(suffix)` is written during the run."""
        return self.staging / f"{self.stem}{suffix}"

    def check_outputs(self, *suffixes: str) -> None:
        """FileSystemError, before any work, if a final path of these outputs is a folder."""
        _not_folders([self.path(suffix) for suffix in suffixes])

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the folder's lock; StoreBusyError if another run holds it. On entry a killed run's
        commit is completed (`_complete_killed_commits`) and the rest of its staging folder
        removed; on exit this run's staging folder is removed, committed or not."""
        ensure_folder(self.folder)
        lock = FileLock(self.folder / LOCK_NAME)
        try:
            with writing(self.folder / LOCK_NAME):
                lock.acquire(timeout=0)
        except Timeout:
            raise StoreBusyError(
                f"{self.folder}: another atmorep run is writing there ({LOCK_NAME} is held)"
            ) from None
        try:
            self._complete_killed_commits()
            self._clear_staging()
            yield
        finally:
            try:
                self._clear_staging()
            finally:
                lock.release()

    def up_to_date(self) -> dict[str, Any] | None:
        """The earlier run's manifest if it answered this request and its outputs are intact."""
        manifest = self._earlier()
        if manifest is None or manifest.get("request") != self.plain_request:
            return None
        for name, digest in manifest.get("outputs", {}).items():
            output = self.folder / name
            if not output.is_file() or _sha256(output) != digest:
                return None
        return manifest

    def finish(self, staged: Sequence[Path], summary: dict[str, Any]) -> dict[str, Any]:
        """Record the staged outputs (with checksums) and the summary in the manifest, then move
        the manifest and the outputs into place."""
        names = [str(p.relative_to(self.staging)) for p in staged]
        manifest = {
            "request": self.plain_request,
            "outputs": {name: _sha256(p) for name, p in zip(names, staged, strict=True)},
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            **summary,
        }
        staged_manifest = self.staging / self.manifest.name
        with writing(self.manifest):
            staged_manifest.write_text(json.dumps(manifest, indent=1))
        self._commit([self.manifest.name, *names])
        return manifest

    def _commit(self, names: Sequence[str]) -> None:
        """Move the staged files `names` (the manifest first) into place, after removing the
        earlier run's outputs; nothing is touched if a final path is a folder."""
        finals = [self.folder / name for name in names]
        _not_folders(finals)
        for final in finals:
            ensure_folder(final.parent)
        for old in self._earlier_outputs() | set(finals[1:]):
            with writing(old):
                old.unlink(missing_ok=True)
        for name, final in zip(names, finals, strict=True):
            with writing(final):
                os.replace(self.staging / name, final)

    def _earlier(self) -> dict[str, Any] | None:
        return _manifest_at(self.manifest)

    def _complete_killed_commits(self) -> None:
        """Move in what a killed run had staged whole: a staged manifest whose outputs are all
        staged with their checksums is committed as `finish` would have; outputs still staged
        that a manifest already in place lists with their checksum are moved beside it."""
        if not self.staging.is_dir():
            return
        for staged in sorted(self.staging.glob("*.json")):
            manifest = _manifest_at(staged)
            if manifest is not None and _whole(self.staging, _outputs(manifest)):
                killed = ProductRun(self.folder, staged.stem, manifest.get("request", {}))
                killed._commit([staged.name, *_outputs(manifest)])
        for placed in sorted(self.folder.glob("*.json")):
            for name, digest in _outputs(_manifest_at(placed) or {}).items():
                final = self.folder / name
                if _whole(self.staging, {name: digest}) and not _whole(self.folder, {name: digest}):
                    ensure_folder(final.parent)
                    with writing(final):
                        os.replace(self.staging / name, final)

    def _earlier_outputs(self) -> set[Path]:
        """The files the earlier manifest lists that lie inside the folder (a manifest cannot
        make a run remove anything else)."""
        inside = {(self.folder / name).resolve() for name in _outputs(self._earlier() or {})}
        folder = self.folder.resolve()
        return {p for p in inside if p.is_relative_to(folder) and p.is_file()}

    def _clear_staging(self) -> None:
        if self.staging.exists():
            with writing(self.staging):
                shutil.rmtree(self.staging)


def _not_folders(paths: Sequence[Path]) -> None:
    for path in paths:
        if path.is_dir():
            raise FileSystemError(f"cannot write {path}: it is a folder")


def _manifest_at(path: Path) -> dict[str, Any] | None:
    """The manifest in `path`, or None if there is none or it does not read as one."""
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _outputs(manifest: dict[str, Any]) -> dict[str, str]:
    """The manifest's outputs (relative name: SHA-256) that stay inside their folder."""
    outputs = manifest.get("outputs")
    if not isinstance(outputs, dict):
        return {}
    return {
        str(name): str(digest)
        for name, digest in outputs.items()
        if not Path(str(name)).is_absolute() and ".." not in Path(str(name)).parts
    }


def _whole(folder: Path, outputs: dict[str, str]) -> bool:
    """Every output is a file in `folder` with its checksum."""
    return all(
        (folder / name).is_file() and _sha256(folder / name) == digest
        for name, digest in outputs.items()
    )


def _sha256(path: Path) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()
