"""Undo journal that makes each ingest into a local zarr store all-or-nothing, and tells readers
what is committed while an ingest runs.

Before an ingest changes the store, the journal keeps what the ingest may overwrite: every
`zarr.json` (shapes and attributes) and, for each array it appends to or rewrites, the chunk files
along the first axis from the first chunk it touches. Chunks beyond an array's old end are new and
need no copy. Files are kept as hard links (copies where the file system has none): zarr and
tensorstore never write into a file but rename a new one over it, so a link keeps the old bytes at
no cost in space or time. The manifest is written last, atomically; its presence means "an ingest
is running or was interrupted". Removing it is the commit point.

Rolling back deletes what the ingest created and links the kept files back over the changed ones,
each replaced atomically: it needs no free space (a full disk is the usual reason to roll back),
and a reader never sees a committed row change. The kept files go only after the manifest, so a
rollback is repeatable and a process killed at any point (even during a rollback) leaves a store
that the next run restores to its state before the interrupted ingest.

Readers use `pending()`: while a manifest exists, the kept root `zarr.json` holds the committed
attributes (among them the committed time steps, `io.store`), and the kept chunks the committed
values of the rows the ingest rewrites (statistics of the month it continues); `stable_read`
repeats a read that an ingest's start, commit or rollback overlapped.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from atmorep_core.errors import StoreError, StoreUpdatingError

_MANIFEST = "manifest.json"
_KEPT = "files"
_CHUNK_DIR = "c"  # zarr v3 default chunk key encoding: <array>/c/<i0>/<i1>/...
_ATTEMPTS = 5  # reads retried when an ingest commits or starts during them
_T = TypeVar("_T")


@dataclass(frozen=True)
class Pending:
    """An ingest in progress (or interrupted) as readers see it: what it keeps and from where."""

    kept: Path  # mirror of the store holding the committed versions of what the ingest changes
    first_chunks: dict[str, int]  # array path in the store -> first chunk the ingest may change
    identity: tuple[int, int]  # the manifest's inode and time: another ingest has another

    def root_attributes(self) -> dict[str, Any]:
        """The committed root attributes; FileNotFoundError once the ingest has finished."""
        metadata: dict[str, Any] = json.loads((self.kept / "zarr.json").read_text())
        return dict(metadata.get("attributes", {}))

    def first_row(self, array: str) -> int | None:
        """From which row on the committed values of `array` are kept; None: it is unchanged."""
        first_chunk = self.first_chunks.get(array)
        if first_chunk is None:
            return None
        return first_chunk * _rows_per_chunk(self.kept / array)


class Journal:
    """The undo journal of one store, kept beside it as `<store>.journal`."""

    def __init__(self, store_path: Path) -> None:
        self.store = store_path
        self.folder = store_path.with_name(store_path.name + ".journal")
        self.manifest = self.folder / _MANIFEST

    def pending(self) -> Pending | None:
        """The ingest running or interrupted, if any."""
        try:
            with open(self.manifest) as stream:
                status = os.fstat(stream.fileno())
                manifest = json.load(stream)
        except FileNotFoundError:
            return None
        identity = (status.st_ino, status.st_mtime_ns)
        return Pending(self.folder / _KEPT, dict(manifest["first_chunks"]), identity)

    def recover(self) -> bool:
        """Undo an interrupted ingest if there was one; True when something was rolled back."""
        rolled_back = self.manifest.exists()
        if rolled_back:
            self._roll_back(json.loads(self.manifest.read_text()))
        self._remove()
        return rolled_back

    @contextmanager
    def transaction(self, first_rows: Mapping[str, int]) -> Iterator[None]:
        """Protect an ingest that writes each array (path relative to the store) from the given
        index on its first axis; an exception inside the block rolls the store back."""
        self.recover()
        try:
            manifest = self._back_up(first_rows)
        except BaseException:
            self._remove()  # nothing was changed yet
            raise
        try:
            yield
        except BaseException:
            self._roll_back(manifest)
            self._remove()
            raise
        self._remove()  # the manifest goes first: the commit point

    def _remove(self) -> None:
        self.manifest.unlink(missing_ok=True)
        if self.folder.exists():
            shutil.rmtree(self.folder)

    def _back_up(self, first_rows: Mapping[str, int]) -> dict[str, Any]:
        self.folder.mkdir()
        kept = self.folder / _KEPT
        metadata = sorted(str(p.relative_to(self.store)) for p in self.store.rglob("zarr.json"))
        for relative in metadata:
            _keep(self.store / relative, kept / relative)
        first_chunks: dict[str, int] = {}
        for array, first_row in first_rows.items():
            if not (self.store / array / "zarr.json").exists():
                continue  # created by this ingest: the rollback deletes it whole
            first_chunks[array] = first_row // _rows_per_chunk(self.store / array)
            for entry in _chunks_from(self.store / array, first_chunks[array]):
                for file in _files(entry):
                    _keep(file, kept / file.relative_to(self.store))
        manifest: dict[str, Any] = {"metadata": metadata, "first_chunks": first_chunks}
        temporary = self.folder / (_MANIFEST + ".tmp")
        temporary.write_text(json.dumps(manifest))
        _fsync_file(temporary)
        os.replace(temporary, self.manifest)
        return manifest

    def _roll_back(self, manifest: dict[str, Any]) -> None:
        known = set(manifest["metadata"])
        for created in sorted(self.store.rglob("zarr.json"), key=lambda p: len(p.parts)):
            if created.exists() and str(created.relative_to(self.store)) not in known:
                shutil.rmtree(created.parent)
        kept = self.folder / _KEPT
        first_chunks: dict[str, int] = manifest["first_chunks"]
        for array, first_chunk in first_chunks.items():
            for entry in _chunks_from(self.store / array, first_chunk):
                _remove_new(entry, kept / entry.relative_to(self.store))
        if kept.exists():
            for backup in kept.rglob("*"):
                if backup.is_file():
                    _put_back(backup, self.store / backup.relative_to(kept))


def _keep(source: Path, target: Path) -> None:
    """A link to `source` at `target` (a copy where links are not possible)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _put_back(backup: Path, target: Path) -> None:
    """Replace `target` by the kept file in one step; nothing to do where it is unchanged."""
    if target.exists() and os.path.samefile(backup, target):
        return
    temporary = target.with_name(target.name + ".restoring")
    temporary.unlink(missing_ok=True)
    _keep(backup, temporary)
    os.replace(temporary, target)


def _remove_new(entry: Path, backup: Path) -> None:
    """Delete what the ingest added under one chunk entry: everything the journal did not keep
    (new chunks, and the temporary files of writes a kill interrupted)."""
    if not backup.exists():
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        return
    for file in _files(entry):
        if not (backup / file.relative_to(entry)).exists():
            file.unlink()


def _files(entry: Path) -> list[Path]:
    return [entry] if entry.is_file() else [p for p in entry.rglob("*") if p.is_file()]


def _rows_per_chunk(array: Path) -> int:
    metadata = json.loads((array / "zarr.json").read_text())
    return int(metadata["chunk_grid"]["configuration"]["chunk_shape"][0])


def _chunks_from(array: Path, first_chunk: int) -> list[Path]:
    """The entries under the array's chunk folder from the given chunk index on (first axis),
    with the temporary files of interrupted writes to them ("3.<hex>.partial", "3.__lock")."""
    chunk_root = array / _CHUNK_DIR
    if not chunk_root.exists():
        return []
    found = []
    for entry in chunk_root.iterdir():
        index = entry.name.split(".")[0]
        if index.isdigit() and int(index) >= first_chunk:
            found.append(entry)
    return found


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def stable_read(journal: Journal, read: Callable[[Pending | None], _T]) -> _T:
    """`read(pending)` of a store's committed state, done again if an ingest started, committed
    or rolled back while it ran (the journal's manifest or the root's metadata changed);
    StoreUpdatingError if that keeps happening."""
    for _ in range(_ATTEMPTS):
        before = journal.pending()
        version = _version(journal, before)
        try:
            value = read(before)
        except (FileNotFoundError, StoreError):
            if _version(journal, journal.pending()) == version:
                raise  # not the journal going while it was read from
            continue
        if _version(journal, journal.pending()) == version:
            return value
    raise StoreUpdatingError(f"{journal.store}: store being updated by another run, retry")


def _version(journal: Journal, pending: Pending | None) -> tuple[int, ...]:
    if pending is not None:
        return pending.identity
    try:
        root = os.stat(journal.store / "zarr.json")
    except FileNotFoundError:
        return ()
    return (root.st_ino, root.st_mtime_ns)  # a commit replaces the root's metadata
