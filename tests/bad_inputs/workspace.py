"""A case's folder `{ws}` and the set-ups that prepare it: copies of fixtures, plain files in the
way, damaged checkpoints, corrupt stores, changed recipes, full and read-only disks."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from tests.bad_inputs.inputs import MADE, SHARED
from tests.helpers import mounted_tmpfs, shared_file


@dataclass
class Workspace:
    """A case's folder `{ws}` and the fixtures its arguments name, created when first named;
    the tmpfs mounted for it stay until `mounts` closes, after the case."""

    root: Path
    request: pytest.FixtureRequest
    mounts: ExitStack
    used: dict[str, Path] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Path:
        if key == "ws":
            return self.root
        if key not in self.used:
            if key in SHARED:
                self.used[key] = shared_file(SHARED[key])
            elif key in MADE:
                self.used[key] = self.request.getfixturevalue("made")[key]
            else:
                self.used[key] = self.request.getfixturevalue(key)
        return self.used[key]

    def format(self, args: Sequence[str]) -> list[str]:
        return [arg.format_map(self) for arg in args]

    def watched(self) -> list[Path]:
        """The folders the command may touch: the workspace and every fixture folder named."""
        return [self.root, *(p for p in self.used.values() if p.is_dir())]

    def tmpfs(self, name: str, size: int) -> Path:
        """A tmpfs of `size` bytes at `{ws}/NAME` until the case ends; skip where refused."""
        return self.mounts.enter_context(mounted_tmpfs(self.root / name, str(size)))


Setup = Callable[[Workspace], None]


def existing_out(ws: Workspace, name: str = "out") -> None:
    (ws.root / name).mkdir(exist_ok=True)
    (ws.root / name / "earlier.txt").write_text("a file an earlier run left here\n")


def copy_of(key: str, name: str) -> Setup:
    def copy(ws: Workspace) -> None:
        source = ws[key]
        for sibling in source.parent.glob(source.name + "*"):  # S.zarr.journal comes along
            target = ws.root / (name + sibling.name.removeprefix(source.name))
            if sibling.is_dir():
                shutil.copytree(sibling, target, symlinks=True)
            else:
                shutil.copy2(sibling, target)

    return copy


def plain_file(name: str, content: bytes = b"not a folder\n") -> Setup:
    def write(ws: Workspace) -> None:
        (ws.root / name).write_bytes(content)

    return write


def truncated_copy(key: str, name: str) -> Setup:
    """`{ws}/NAME`: the first half of the fixture file `key`, as an interrupted copy leaves it."""

    def cut(ws: Workspace) -> None:
        data = ws[key].read_bytes()
        (ws.root / name).write_bytes(data[: len(data) // 2])

    return cut


def folder_at(name: str) -> Setup:
    def make(ws: Workspace) -> None:
        (ws.root / name).mkdir(parents=True)

    return make


def latest_weights(run_folder: Path) -> Path:
    return run_folder / (run_folder / "latest").read_text().strip() / "model.safetensors"


def _truncated(run_folder: Path) -> None:
    weights = latest_weights(run_folder)
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def _torch_save(run_folder: Path) -> None:
    """What torch.save writes (a zip holding a pickle): loading must never unpickle it."""
    torch.save({"weight": torch.zeros(2)}, latest_weights(run_folder))


DAMAGES: dict[str, Callable[[Path], object]] = {
    "missing": lambda run_folder: latest_weights(run_folder).unlink(),
    "truncated": _truncated,
    "torch.save": _torch_save,
    "dangling latest": lambda run_folder: (run_folder / "latest").write_text("step-99999999"),
}


def damaged(how: str) -> Setup:
    """A copy of the global run as `{ws}/run` whose latest checkpoint is damaged (DAMAGES)."""

    def damage(ws: Workspace) -> None:
        copy_of("global_run", "run")(ws)
        DAMAGES[how](ws.root / "run")

    return damage


def corrupt_json(node: str) -> Setup:
    """A copy of the global store as `{ws}/s.zarr` with a cut-off `zarr.json` at `node`."""

    def corrupt(ws: Workspace) -> None:
        copy_of("global_store", "s.zarr")(ws)
        (ws.root / "s.zarr" / node / "zarr.json").write_text('{"zarr_format": 3, "node_ty')

    return corrupt


def recipe(change: Callable[[dict[str, Any]], Any]) -> Setup:
    """`{ws}/recipe.yaml`: the global run's resolved recipe, changed."""

    def write(ws: Workspace) -> None:
        raw = yaml.safe_load((ws["global_run"] / "recipe.yaml").read_text())
        changed = change(raw)
        text = changed if isinstance(changed, str) else yaml.safe_dump(raw)
        (ws.root / "recipe.yaml").write_text(text)

    return write


def with_value(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    """A change for `recipe`: the key at the dotted `path` (list items by index) set."""

    def change(raw: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = raw
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[last] = value

    return change


def _read_only(path: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)


def full_disk(name: str, size: int) -> Setup:
    """`{ws}/NAME` on an empty tmpfs of `size` bytes: the products do not fit."""

    def mount(ws: Workspace) -> None:
        ws.tmpfs(name, size)

    return mount


def read_only(name: str) -> Setup:
    """`{ws}/NAME` on a read-only tmpfs holding an earlier file."""

    def mount(ws: Workspace) -> None:
        path = ws.tmpfs(name, 1 << 20)
        (path / "earlier.txt").write_text("a file an earlier run left here\n")
        _read_only(path)

    return mount


def _allocated(path: Path) -> int:
    """Bytes the files under `path` take on a disk (whole blocks, as tmpfs counts its pages)."""
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


def store_on_disk(room: int | None) -> Setup:
    """A copy of the half t2m store at `{ws}/disk/s.zarr` on a tmpfs with `room` bytes to spare
    (None: read-only)."""

    def mount(ws: Workspace) -> None:
        spare = 1 << 20 if room is None else room
        disk = ws.tmpfs("disk", _allocated(ws["half_store"]) + spare)
        shutil.copytree(ws["half_store"], disk / "s.zarr")
        if room is None:
            _read_only(disk)

    return mount


GOOD_RECIPE = recipe(lambda raw: None)
