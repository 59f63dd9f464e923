"""Undo journal that makes each ingest into a local zarr store all-or-nothing.

Before an ingest changes the store, the journal copies what the ingest may overwrite: every
`zarr.json` (shapes and attributes) and, for each array it appends to or rewrites, the chunk files
along the first axis from the first chunk it touches. Chunks beyond an array's old end are new and
need no copy. The manifest is written last, atomically; its presence means "roll back". Rolling
back restores the copies, deletes chunks and arrays the ingest created, and is itself repeatable,
so a process killed at any point (even during a rollback) leaves a store that the next run restores
to its state before the interrupted ingest.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

_MANIFEST = "manifest.json"
_CHUNK_DIR = "c"  # zarr v3 default chunk key encoding: <array>/c/<i0>/<i1>/...


class Journal:
    """The undo journal of one store, kept beside it as `<store>.journal`."""

    def __init__(self, store_path: Path) -> None:
        self.store = store_path
        self.folder = store_path.with_name(store_path.name + ".journal")

    def recover(self) -> bool:
        """Undo an interrupted ingest if there was one; True when something was rolled back."""
        manifest_path = self.folder / _MANIFEST
        rolled_back = manifest_path.exists()
        if rolled_back:
            self._roll_back(json.loads(manifest_path.read_text()))
        if self.folder.exists():
            shutil.rmtree(self.folder)
        return rolled_back

    @contextmanager
    def transaction(self, first_rows: Mapping[str, int]) -> Iterator[None]:
        """Protect an ingest that writes each array (path relative to the store) from the given
        index on its first axis; an exception inside the block rolls the store back."""
        self.recover()
        manifest = self._back_up(first_rows)
        try:
            yield
        except BaseException:
            self._roll_back(manifest)
            shutil.rmtree(self.folder)
            raise
        (self.folder / _MANIFEST).unlink()  # the commit point
        shutil.rmtree(self.folder)

    def _back_up(self, first_rows: Mapping[str, int]) -> dict[str, object]:
        self.folder.mkdir()
        metadata = sorted(str(p.relative_to(self.store)) for p in self.store.rglob("zarr.json"))
        for relative in metadata:
            self._copy(self.store / relative, self.folder / "files" / relative)
        first_chunks: dict[str, int] = {}
        for array, first_row in first_rows.items():
            if not (self.store / array / "zarr.json").exists():
                continue  # created by this ingest: the rollback deletes it whole
            first_chunks[array] = first_row // _rows_per_chunk(self.store / array)
            for chunk in _chunks_from(self.store / array, first_chunks[array]):
                self._copy(chunk, self.folder / "files" / chunk.relative_to(self.store))
        manifest: dict[str, object] = {"metadata": metadata, "first_chunks": first_chunks}
        temporary = self.folder / (_MANIFEST + ".tmp")
        temporary.write_text(json.dumps(manifest))
        _fsync_file(temporary)
        os.replace(temporary, self.folder / _MANIFEST)
        return manifest

    def _roll_back(self, manifest: dict[str, object]) -> None:
        metadata: list[str] = manifest["metadata"]  # type: ignore[assignment]
        known = set(metadata)
        for created in sorted(self.store.rglob("zarr.json"), key=lambda p: len(p.parts)):
            if created.exists() and str(created.relative_to(self.store)) not in known:
                shutil.rmtree(created.parent)
        first_chunks: dict[str, int] = manifest["first_chunks"]  # type: ignore[assignment]
        for array, first_chunk in first_chunks.items():
            for chunk in _chunks_from(self.store / array, first_chunk):
                shutil.rmtree(chunk) if chunk.is_dir() else chunk.unlink()
        saved = self.folder / "files"
        if saved.exists():
            for backup in saved.rglob("*"):
                if backup.is_file():
                    self._copy(backup, self.store / backup.relative_to(saved))

    @staticmethod
    def _copy(source: Path, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)


def _rows_per_chunk(array: Path) -> int:
    metadata = json.loads((array / "zarr.json").read_text())
    return int(metadata["chunk_grid"]["configuration"]["chunk_shape"][0])


def _chunks_from(array: Path, first_chunk: int) -> list[Path]:
    chunk_root = array / _CHUNK_DIR
    if not chunk_root.exists():
        return []
    return [p for p in chunk_root.iterdir() if p.name.isdigit() and int(p.name) >= first_chunk]


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
