"""Shared test helpers: the real GRIB samples beside the project, and store comparisons."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import eccodes
import numpy as np
import pytest
import xarray as xr
import yaml
import zarr

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_file(relative: str) -> Path:
    """A real sample file, or skip the test with the reason when the samples are absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(
            f"sample data not found: {relative} (expected in ../shared/data beside the project)"
        )
    return path


def grib_messages(path: Path) -> list[bytes]:
    """The raw bytes of each message of a GRIB file."""
    messages = []
    with open(path, "rb") as stream:
        while (handle := eccodes.codes_grib_new_from_file(stream)) is not None:
            messages.append(eccodes.codes_get_message(handle))
            eccodes.codes_release(handle)
    return messages


def write_messages(path: Path, messages: list[bytes]) -> Path:
    path.write_bytes(b"".join(messages))
    return path


def decode_all(path: Path) -> list[dict[str, Any]]:
    """Every message's keys and values as eccodes decodes them: the reference for store values."""
    decoded = []
    with open(path, "rb") as stream:
        while (handle := eccodes.codes_grib_new_from_file(stream)) is not None:
            get = eccodes.codes_get
            decoded.append(
                {
                    "short_name": get(handle, "shortName"),
                    "level": get(handle, "level"),
                    "number": get(handle, "number")
                    if eccodes.codes_is_defined(handle, "number")
                    else 0,
                    "date": get(handle, "validityDate"),
                    "time": get(handle, "validityTime"),
                    "values": eccodes.codes_get_values(handle).reshape(
                        get(handle, "Nj"), get(handle, "Ni")
                    ),
                }
            )
            eccodes.codes_release(handle)
    return decoded


def store_fingerprint(path: Path) -> dict[str, Any]:
    """Every array's values and shape and every node's attributes, for equality checks."""
    return _fingerprint(zarr.open_group(str(path), mode="r"), "")


def _fingerprint(group: zarr.Group, prefix: str) -> dict[str, Any]:
    result: dict[str, Any] = {f"{prefix}attrs": json.dumps(dict(group.attrs), sort_keys=True)}
    for name, array in group.arrays():
        result[f"{prefix}{name}"] = np.asarray(array[...])
        result[f"{prefix}{name}.attrs"] = json.dumps(dict(array.attrs), sort_keys=True)
    for name, sub in group.groups():
        result |= _fingerprint(sub, f"{prefix}{name}/")
    return result


def assert_same_store(a: Path, b: Path) -> None:
    left, right = store_fingerprint(a), store_fingerprint(b)
    assert sorted(left) == sorted(right)
    for key in left:
        if isinstance(left[key], np.ndarray):
            np.testing.assert_array_equal(left[key], right[key], err_msg=key)
        else:
            assert left[key] == right[key], key


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `atmorep ARGS` in a fresh process, as a user or cron would."""
    return subprocess.run(
        [sys.executable, "-m", "atmorep_cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=1800,  # a training fixture on a busy 2-core machine
    )


RECIPES = Path(__file__).resolve().parents[1] / "recipes"
SMALLER_MODEL = {"embed_dim": 32, "num_heads": 2, "encoder_layers": 1, "decoder_layers": 1}


def train_recipe_briefly(
    recipe: str, store: Path, folder: Path, steps: int, target: Path | None = None
) -> Path:
    """A recipe of `recipes/` with a smaller model (its question, fields and tokens kept),
    trained for a few steps on `store` (paired with `target` if given) through the CLI; the run
    folder."""
    path = write_brief_recipe(recipe, store, folder, steps, target)
    result = run_cli("train", str(path), "--run-dir", str(folder / "run"))
    assert result.returncode == 0, result.stderr
    return folder / "run"


def write_brief_recipe(
    recipe: str, store: Path, folder: Path, steps: int, target: Path | None = None
) -> Path:
    """`train_recipe_briefly`'s recipe, written as FOLDER/recipe.yaml: its path."""
    resolved = yaml.safe_load((RECIPES / recipe).read_text())
    resolved["data"]["store"] = str(store)
    if target is not None:
        resolved["data"]["target"] = str(target)
    resolved["model"]["fields"][0] |= SMALLER_MODEL
    resolved["training"] |= {"steps": steps, "checkpoint_every": steps, "validate_every": steps}
    (folder / "recipe.yaml").write_text(yaml.safe_dump(resolved))
    return folder / "recipe.yaml"


def read_grib(
    path: Path, keys: tuple[str, ...], optional: tuple[str, ...] = ("number",)
) -> list[dict[str, Any]]:
    """Per message the given keys (`optional` ones None where undefined), the values and the
    latitudes and longitudes, (Nj, Ni) each, as eccodes decodes them."""
    found = []
    with open(path, "rb") as stream:
        while (handle := eccodes.codes_grib_new_from_file(stream)) is not None:
            record = {key: eccodes.codes_get(handle, key) for key in (*keys, "Ni", "Nj")}
            for key in optional:
                defined = eccodes.codes_is_defined(handle, key)
                record[key] = eccodes.codes_get(handle, key) if defined else None
            shape = (record["Nj"], record["Ni"])
            record["values"] = eccodes.codes_get_values(handle).reshape(shape)
            record["lats"] = eccodes.codes_get_array(handle, "latitudes").reshape(shape)
            record["lons"] = eccodes.codes_get_array(handle, "longitudes").reshape(shape)
            found.append(record)
            eccodes.codes_release(handle)
    return found


def open_cfgrib(path: Path, **filter_by_keys: Any) -> xr.Dataset:
    """The file as cfgrib reads it (no index file), loaded, with optional key filters."""
    kwargs: dict[str, Any] = {"indexpath": ""}
    if filter_by_keys:
        kwargs["filter_by_keys"] = filter_by_keys
    return xr.open_dataset(path, engine="cfgrib", backend_kwargs=kwargs).load()


def atmorep_in_process(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The CLI run in this process as its console script runs it: exit code, stdout, stderr."""
    code = atmorep_exit_code(*args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def atmorep_exit_code(*args: str) -> int:
    """`atmorep_in_process` with the output left where it goes: the exit code (a code that is
    not a number printed on stderr and 1, as Python's own exit does)."""
    from atmorep_cli import main

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", ["atmorep", *args])
        try:
            main.run()
        except SystemExit as done:
            if done.code is None or isinstance(done.code, int):
                return done.code or 0
            print(done.code, file=sys.stderr)
            return 1
    return 0


@contextmanager
def mounted_tmpfs(point: Path, size: str) -> Iterator[Path]:
    """A size-limited tmpfs at `point` (made here) for a full or read-only disk; a skip saying why
    where mounting is refused (it needs root)."""
    point.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a size-limited tmpfs here: {mounted.stderr.strip()}")
    try:
        yield point
    finally:
        subprocess.run(["umount", "--lazy", str(point)], check=True)
