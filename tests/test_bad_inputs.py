"""The bad-input corpus of issue 14: every user-caused failure of every command comes out as one
`error:` line on stderr and its documented exit code, never a traceback, and leaves the store,
run and output folders as they were (a fingerprint of every file, tests/fingerprint.py).

Exit codes (atmorep_core/errors.py): 2 invalid option or recipe; 3 bad input data (also
implausible values and input outside the checkpoint's experience); 4 store or checkpoint missing,
not one, or mismatched; 5 locked; 6 input times not (yet) there or the store being updated (cron
retries); 7 cannot read or write (disk full, read-only file system, an output path of the wrong
type). A missing input, or an input of the wrong kind, takes its input's code (recipe 2, GRIB 3,
store or checkpoint 4).

Option errors are refused before any work: their output folder (`{ws}/out` and the like) does
not exist before and must not exist after. Failures found while running start from an existing
output folder holding an earlier file, which must come through untouched.

The CLI runs in this process (`atmorep_cli.main.run` with `sys.argv` set: the console script's
own error handling, at the cost of a function call); cases that could run for ever or exhaust
the machine's memory until they are fixed run in a subprocess under a time and memory limit.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import eccodes
import numpy as np
import pytest
import torch
import yaml

from atmorep_cli.main import run
from atmorep_core.data.ingest_plan import IngestOptions
from atmorep_core.data.prepare import prepare
from atmorep_core.io.grib_messages import transform
from tests.conftest import ENSEMBLE, T2M, train_briefly
from tests.fingerprint import changes, tree_fingerprint
from tests.helpers import run_cli, shared_file, write_brief_recipe

SHARED = {
    "ensemble_grib": ENSEMBLE,  # global 3 deg, t and z at 500 / 850 hPa, 10 members, 2017-01-01/02
    "corrupt_grib": "bad/era5-levels-corrupted.grib",
    "ml137": "ifs/ifs-fc-ml137-t-u-v-q-20181114T12-step24.grib2",  # IFS, Europe, November 2018
    "n80": "ifs/ifs-fc-t-ml-n80-20180405T12-step12.grib",  # IFS, global, April 2018
}
INIT = "2017-01-02T00"  # the global store's last input time that a 12 h lead can follow
STEM = "forecast_20170102T0000"
KILL_AT_FAULT_POINT = "ATMOREP_TEST_KILL_AT_FAULT_POINT"  # prepare's kill -9 trials
PROJECT = Path(__file__).resolve().parents[1]
ISOLATED_TIMEOUT_S = 60  # a refusal comes at once; only a run that hangs takes this long
ISOLATED_MEMORY = 4 << 30  # the refusals under test compare with physical memory, not this


# --- running the CLI -------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str


def invoke(args: Sequence[str]) -> int:
    """`atmorep ARGS` in this process through the console script's entry point; its exit code.
    An exception escaping `run` is what the console script would print: a traceback, exit 1."""
    saved = sys.argv
    sys.argv = ["atmorep", *args]
    try:
        with _warnings_printed():
            run()
    except SystemExit as done:
        return _exit_code(done.code)
    except Exception:
        traceback.print_exc()
        return 1
    finally:
        sys.argv = saved
    return 0


def _exit_code(code: object) -> int:
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=sys.stderr)  # sys.exit("text"), as Python's own exit does
    return 1


_QUIET_BY_DEFAULT = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


@contextmanager
def _warnings_printed() -> Iterator[None]:
    """Warnings on stderr under Python's default filters, as a user sees them (pytest would
    otherwise record them out of sight)."""

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    with warnings.catch_warnings():
        warnings.resetwarnings()
        for quiet in _QUIET_BY_DEFAULT:
            warnings.simplefilter("ignore", quiet)
        warnings.showwarning = show
        yield


def in_process(args: Sequence[str], capfd: pytest.CaptureFixture[str]) -> Outcome:
    capfd.readouterr()
    code = invoke(args)
    captured = capfd.readouterr()
    return Outcome(code, captured.out, captured.err)


_LIMITED = (
    "import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_AS, ({0}, {0})); "
    "sys.argv[0] = 'atmorep'; runpy.run_module('atmorep_cli', run_name='__main__')"
)


def isolated(args: Sequence[str], cwd: Path) -> Outcome:
    """`atmorep ARGS` in a subprocess with a memory limit, killed after ISOLATED_TIMEOUT_S; it
    imports this checkout, as this process does, whatever `cwd` is."""
    command = [sys.executable, "-c", _LIMITED.format(ISOLATED_MEMORY), *args]
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, cwd=cwd, env=env, timeout=ISOLATED_TIMEOUT_S
        )
    except subprocess.TimeoutExpired as expired:
        return Outcome(-9, str(expired.stdout), f"(still running after {ISOLATED_TIMEOUT_S} s)")
    return Outcome(done.returncode, done.stdout, done.stderr)


# --- inputs ------------------------------------------------------------------------------------


Pick = Callable[[int, int], bool]
"""(eccodes handle, message index) -> whether the message is chosen."""


def derived_grib(source: Path, target: Path, keep: Pick, implausible: Pick, value: float) -> Path:
    """A copy of the messages `keep` takes, every value of those `implausible` picks set to
    `value` (all other keys as they were)."""

    def change(handle: int, index: int) -> bytes | None:
        if not keep(handle, index):
            return None
        if implausible(handle, index):
            size = eccodes.codes_get_size(handle, "values")
            eccodes.codes_set_values(handle, np.full(size, value))
        return bytes(eccodes.codes_get_message(handle))

    transform(source, target, change)
    return target


def _every(handle: int, index: int) -> bool:
    return True


def _none(handle: int, index: int) -> bool:
    return False


def _index(test: Callable[[int], bool]) -> Pick:
    return lambda handle, index: test(index)


def _keys(**wanted: object) -> Pick:
    return lambda handle, index: all(eccodes.codes_get(handle, k) == v for k, v in wanted.items())


@dataclass(frozen=True)
class Derived:
    """A GRIB file cut from, or changed in, a real sample (see `derived_grib`)."""

    source: str
    keep: Pick = _every
    implausible: Pick = _none
    value: float = 0.0


FIRST_HALF = _index(lambda index: index < 300)  # t2m of 1 March 00 UTC .. 13 March 11 UTC
SECOND_HALF = _index(lambda index: index >= 300)
DAY_21 = _keys(dataDate=20190321)
MADE = {
    "t2m_first": Derived(T2M, FIRST_HALF),
    "t2m_second": Derived(T2M, SECOND_HALF),
    "t2m_hot": Derived(T2M, SECOND_HALF, _index(lambda index: index == 310), 1e30),
    "t2m_cold": Derived(T2M, SECOND_HALF, _index(lambda index: index == 320), -500.0),
    "t2m_day": Derived(T2M, DAY_21),
    "t2m_day_hot": Derived(T2M, DAY_21, _keys(dataTime=1200), 1e30),
    "ens_day1": Derived(ENSEMBLE, _keys(dataDate=20170101)),
    "ens_day2": Derived(ENSEMBLE, _keys(dataDate=20170102)),
    "ens_hot": Derived(
        ENSEMBLE, implausible=_keys(shortName="t", level=850, dataDate=20170102), value=1e30
    ),
    "n80_hot": Derived(SHARED["n80"], implausible=_index(lambda index: index == 2), value=1e30),
}


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every file of MADE, named NAME.grib with dashes (t2m-hot.grib)."""
    folder = tmp_path_factory.mktemp("bad-gribs")
    return {
        name: derived_grib(
            shared_file(d.source), folder / f"{name.replace('_', '-')}.grib", d.keep,
            d.implausible, d.value,
        )
        for name, d in MADE.items()
    }  # fmt: skip


@pytest.fixture(scope="module")
def half_store(tmp_path_factory: pytest.TempPathFactory, made: dict[str, Path]) -> Path:
    """t2m of 1 March 00 UTC .. 13 March 11 UTC: the second half of the sample continues it."""
    path = tmp_path_factory.mktemp("half") / "t2m.zarr"
    prepare([made["t2m_first"]], path)
    return path


@pytest.fixture(scope="module")
def journal_store(tmp_path_factory: pytest.TempPathFactory, made: dict[str, Path]) -> Path:
    """The global ensemble mean with 1 January committed and the append of 2 January killed
    (kill -9) at its first fault point: its undo journal is there, 2 January is not committed."""
    store = tmp_path_factory.mktemp("journal") / "s.zarr"
    prepare([made["ens_day1"]], store, IngestOptions(member="mean"))
    append = ("prepare", str(made["ens_day2"]), "--store", str(store), "--member", "mean")
    killed = run_cli(*append, env={KILL_AT_FAULT_POINT: "1"})
    assert killed.returncode == -9, killed.stderr
    assert store.with_name("s.zarr.journal").exists()
    return store


@pytest.fixture(scope="module")
def n80_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Temperature on model levels 1, 51 and 101 trained on the N80 IFS forecast: the whole
    globe in April 2018, so the IFS file over Europe in November 2018 is outside its experience
    (its levels are there: only that can refuse it)."""
    folder = tmp_path_factory.mktemp("n80-run")
    prepare([shared_file(SHARED["n80"])], folder / "n80.zarr")
    model = {"fields": [{
        "name": "temperature", "levels": [1, 51, 101], "token_count": [1, 2, 2],
        "token_size": [1, 9, 9], "embed_dim": 16, "num_heads": 2, "encoder_layers": 1,
        "decoder_layers": 1, "tail_heads": 2, "normalisation": "global",
    }]}  # fmt: skip
    masking = {"fields": {"temperature": {"kind": "BERT"}}}
    return train_briefly(folder, folder / "n80.zarr", model, masking=masking)


def trained_here(recipe_name: str, store: Path, folder: Path, target: Path | None = None) -> Path:
    """`train_recipe_briefly` for 2 steps, in this process (no second start of torch)."""
    path = write_brief_recipe(recipe_name, store, folder, 2, target)
    assert invoke(["train", str(path), "--run-dir", str(folder / "run")]) == 0
    return folder / "run"


@pytest.fixture(scope="module")
def downscale_run(tmp_path_factory: pytest.TempPathFactory, t2m_store: Path) -> Path:
    return trained_here("t2m-downscale.yaml", t2m_store, tmp_path_factory.mktemp("downscale"))


@pytest.fixture(scope="module")
def bias_run(tmp_path_factory: pytest.TempPathFactory, t2m_store: Path) -> Path:
    """Trained with a target (the store itself: enough for `bias-correct` to accept it)."""
    folder = tmp_path_factory.mktemp("bias-run")
    return trained_here("t2m-bias.yaml", t2m_store, folder, target=t2m_store)


@pytest.fixture(scope="module")
def global_product(tmp_path_factory: pytest.TempPathFactory, global_run: Path) -> Path:
    out = tmp_path_factory.mktemp("global-product")
    args = ("forecast", "--checkpoint", str(global_run), "--init", INIT, "--lead", "12h")
    assert invoke([*args, "--out", str(out), "--format", "netcdf", "--json"]) == 0
    return out / f"{STEM}.nc"


# --- the workspace of a case -------------------------------------------------------------------


@dataclass
class Workspace:
    """A case's folder `{ws}` and the fixtures its arguments name, created when first named."""

    root: Path
    request: pytest.FixtureRequest
    used: dict[str, Path] = field(default_factory=dict)
    cleanups: list[Callable[[], object]] = field(default_factory=list)

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


Setup = Callable[[Workspace], None]


@pytest.fixture
def workspace(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Workspace]:
    ws = Workspace(tmp_path, request)
    yield ws
    for cleanup in reversed(ws.cleanups):
        cleanup()


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


def _latest_weights(run_folder: Path) -> Path:
    return run_folder / (run_folder / "latest").read_text().strip() / "model.safetensors"


def _truncated(run_folder: Path) -> None:
    weights = _latest_weights(run_folder)
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def _torch_save(run_folder: Path) -> None:
    """What torch.save writes (a zip holding a pickle): loading must never unpickle it."""
    torch.save({"weight": torch.zeros(2)}, _latest_weights(run_folder))


DAMAGES: dict[str, Callable[[Path], object]] = {
    "missing": lambda run_folder: _latest_weights(run_folder).unlink(),
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


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    def change(raw: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = raw
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[last] = value

    return change


def _mount_tmpfs(ws: Workspace, name: str, size: int) -> Path:
    """A size-limited tmpfs at `{ws}/NAME`, unmounted after the case; skip where refused."""
    path = ws.root / name
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {mounted.stderr.strip()}")
    ws.cleanups.append(lambda: subprocess.run(["umount", "--lazy", str(path)], check=True))
    return path


def _read_only(path: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)


def full_disk(name: str, size: int) -> Setup:
    """`{ws}/NAME` on an empty tmpfs of `size` bytes: the products do not fit."""

    def mount(ws: Workspace) -> None:
        _mount_tmpfs(ws, name, size)

    return mount


def read_only(name: str) -> Setup:
    """`{ws}/NAME` on a read-only tmpfs holding an earlier file."""

    def mount(ws: Workspace) -> None:
        path = _mount_tmpfs(ws, name, 1 << 20)
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
        disk = _mount_tmpfs(ws, "disk", _allocated(ws["half_store"]) + spare)
        shutil.copytree(ws["half_store"], disk / "s.zarr")
        if room is None:
            _read_only(disk)

    return mount


# --- the corpus -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """`atmorep ARGS` after `setup`: exit `code`, one `error:` line matching every `words`
    pattern (what the refusal must name), and every watched folder as before. `{NAME}` in ARGS
    is the case's folder (`ws`), a fixture, a shared sample (SHARED) or a made file (MADE);
    `isolated` runs it in a subprocess (see `isolated`)."""

    id: str
    args: tuple[str, ...]
    code: int
    words: tuple[str, ...] = ()
    setup: tuple[Setup, ...] = ()
    isolated: bool = False


# Each command's arguments with a checkpoint that can answer its question and `{ws}/out`.


def forecast(
    *extra: str, run: str = "{global_run}", init: str = INIT, lead: str = "12h"
) -> tuple[str, ...]:
    return ("forecast", "--checkpoint", run, "--init", init, "--lead", lead, "--out", "{ws}/out",
            *extra)  # fmt: skip


def interpolate(
    *extra: str, start: str = "2017-01-01T00", end: str = "2017-01-02T12"
) -> tuple[str, ...]:
    return ("interpolate", "--checkpoint", "{global_run}", "--start", start, "--end", end,
            "--out", "{ws}/out", *extra)  # fmt: skip


def counterfactual(*extra: str, init: str = INIT) -> tuple[str, ...]:
    return ("counterfactual", "--checkpoint", "{global_run}", "--init", init, "--lead", "12h",
            "--out", "{ws}/out", *extra)  # fmt: skip


def downscale(
    *extra: str,
    start: str = "2019-03-21T00",
    end: str = "2019-03-21T05",
    run: str = "{downscale_run}",
) -> tuple[str, ...]:
    return ("downscale", "--checkpoint", run, "--start", start, "--end", end,
            "--out", "{ws}/out", *extra)  # fmt: skip


def correct(*extra: str, ifs: str = "{ml137}", run: str = "{n80_run}") -> tuple[str, ...]:
    return ("correct", "--ifs", ifs, "--checkpoint", run, "-o", "{ws}/out/c.grib2", *extra)


def bias_correct(
    *extra: str, source: str = "{t2m_day}", run: str = "{bias_run}"
) -> tuple[str, ...]:
    return ("bias-correct", source, "--checkpoint", run, "-o", "{ws}/out/b.grib2", *extra)


def evaluate(
    *extra: str, product: str = "{global_product}", truth: str = "{global_store}"
) -> tuple[str, ...]:
    return ("evaluate", product, "--truth", truth, "--out", "{ws}/out", *extra)


def train(
    *extra: str, recipe_path: str = "{ws}/recipe.yaml", run_dir: str = "{ws}/run"
) -> tuple[str, ...]:
    return ("train", recipe_path, "--run-dir", run_dir, "--device", "cpu", *extra)


def prepare_into(source: str, store: str = "{ws}/s.zarr", *extra: str) -> tuple[str, ...]:
    return ("prepare", source, "--store", store, *extra)


E30 = r"e\+?30\b"  # 1e30 as any float format writes it
SIZE = r"\d(\.\d+)? ?[KMGTPE]i?B"  # a memory estimate, e.g. 42.6 TiB
HALF = (copy_of("half_store", "s.zarr"),)
OUT = (existing_out,)
GOOD_RECIPE = recipe(lambda raw: None)
CORRUPT = "era5-levels-corrupted.grib"
NOVEMBER = "November|2018-11"  # the IFS file's month, which the N80 checkpoint never saw

CASES = [
    # prepare: missing, corrupt and implausible input; wrong stores; full and read-only disks
    Case("prepare-missing-file", prepare_into("{ws}/nosuch.grib"), 3, ("nosuch.grib",), HALF),
    Case("prepare-corrupt-grib", prepare_into("{corrupt_grib}"), 3, (CORRUPT,), HALF),
    Case("prepare-corrupt-grib-new-store", prepare_into("{corrupt_grib}", "{ws}/new.zarr"), 3),
    Case("prepare-1e30-K", prepare_into("{t2m_hot}"), 3, ("t2m-hot.grib", E30), HALF),
    Case("prepare-minus-500-K", prepare_into("{t2m_cold}"), 3, ("t2m-cold.grib", r"-500\b"), HALF),
    Case("prepare-1e30-K-new-store", prepare_into("{t2m_hot}", "{ws}/new.zarr"), 3, (E30,)),
    Case("prepare-fields-nosuch", prepare_into("{t2m_first}", "{ws}/new.zarr", "--fields",
         "nosuch"), 2, ("nosuch",)),
    Case("prepare-missing-level", prepare_into("{ensemble_grib}", "{ws}/new.zarr", "--levels",
         "700"), 3, ("700",)),
    Case("prepare-member-abc", prepare_into("{ensemble_grib}", "{ws}/new.zarr", "--member",
         "abc"), 2, ("--member",)),
    Case("prepare-other-grid", prepare_into("{ensemble_grib}"), 4, ("grid",), HALF),
    Case("prepare-store-not-a-store", prepare_into("{t2m_first}", "{ws}/out"), 4, ("out",), OUT),
    Case("prepare-corrupt-zarr-json", prepare_into("{ens_day1}", "{ws}/s.zarr", "--member",
         "mean"), 4, ("zarr.json",), (corrupt_json("."),)),
    Case("prepare-full-disk", prepare_into("{t2m_second}", "{ws}/disk/s.zarr"), 7,
         ("No space left",), (store_on_disk(256 << 10),)),
    Case("prepare-read-only", prepare_into("{t2m_second}", "{ws}/disk/s.zarr"), 7,
         ("Read-only",), (store_on_disk(None),)),
    # info: a store that is not there, not one, or corrupt
    Case("info-missing-store", ("info", "{ws}/nosuch.zarr"), 4, ("nosuch.zarr",)),
    Case("info-a-file", ("info", "{ws}/s.zarr"), 4, ("s.zarr",), (plain_file("s.zarr"),)),
    Case("info-corrupt-root-json", ("info", "{ws}/s.zarr"), 4, ("zarr.json",),
         (corrupt_json("."),)),
    Case("info-corrupt-field-json", ("info", "{ws}/s.zarr"), 4, ("zarr.json",),
         (corrupt_json("temperature"),)),
    # model and train: recipes, overrides, run folders, checkpoints
    Case("model-missing-recipe", ("model", "{ws}/nosuch.yaml"), 2, ("nosuch.yaml",)),
    Case("model-not-yaml", ("model", "{ws}/recipe.yaml"), 2, ("recipe.yaml",),
         (recipe(lambda raw: "model: [unclosed\n"),)),
    Case("model-unknown-key", ("model", "{ws}/recipe.yaml"), 2, ("nosuch_key",),
         (recipe(_set("model.fields.0.nosuch_key", 1)),)),
    Case("model-wrong-type", ("model", "{ws}/recipe.yaml"), 2, ("embed_dim",),
         (recipe(_set("model.fields.0.embed_dim", "wide")),)),
    Case("model-heads-do-not-divide-the-width", ("model", "{ws}/recipe.yaml"), 2, ("num_heads",),
         (recipe(_set("model.fields.0.num_heads", 3)),)),
    Case("train-unknown-key", train(), 2, ("nosuch_key",),
         (recipe(_set("training.nosuch_key", 1)),)),
    Case("train-set-wrong-type", train("--set", "training.steps=many"), 2, ("steps",),
         (GOOD_RECIPE,)),
    Case("train-set-without-value", train("--set", "training.steps"), 2, ("--set",),
         (GOOD_RECIPE,)),
    Case("train-set-unknown-section", train("--set", "nosuch.key=1"), 2, ("nosuch",),
         (GOOD_RECIPE,)),
    Case("train-missing-store", train("--set", "data.store={ws}/nosuch.zarr"), 4,
         ("nosuch.zarr",), (GOOD_RECIPE,)),
    Case("train-into-a-run-with-checkpoints", train(recipe_path="{ws}/run/recipe.yaml"), 2,
         ("--resume",), (copy_of("global_run", "run"),)),
    Case("train-resume-truncated-weights", train("--resume", recipe_path="{ws}/run/recipe.yaml"),
         4, ("model.safetensors",), (damaged("truncated"),)),
    Case("train-init-field-from-torch-save", train("--init-field", "temperature={ws}/run",
         run_dir="{ws}/new"), 4, ("model.safetensors",), (GOOD_RECIPE, damaged("torch.save"))),
    Case("train-init-field-missing-run", train("--init-field", "temperature={ws}/nosuch"), 4,
         ("nosuch",), (GOOD_RECIPE,)),
    Case("train-run-dir-a-file", train(), 7, ("run",), (GOOD_RECIPE, plain_file("run"))),
    Case("train-read-only-run-dir", train(run_dir="{ws}/ro/run"), 7, ("Read-only",),
         (GOOD_RECIPE, read_only("ro"))),
    # forecast: times, leads, members, plots and formats, refused before any work
    Case("forecast-init-2019-13-40", forecast(init="2019-13-40"), 2, ("--init", "2019-13-40")),
    Case("forecast-init-tomorrow", forecast(init="tomorrow"), 2, ("--init", "tomorrow")),
    Case("forecast-init-half-hour", forecast(init="2017-01-02T00:30"), 2, ("--init",)),
    # 100000000 h rounded up to a whole number of the store's 12 h steps
    Case("forecast-lead-100000008h", forecast(lead="100000008h"), 2, ("--lead", SIZE),
         isolated=True),
    Case("forecast-members-100000000", forecast("--members", "100000000"), 2,
         ("--members", SIZE), isolated=True),
    Case("forecast-members-0", forecast("--members", "0"), 2, ("--members",)),
    Case("forecast-members-abc", forecast("--members", "abc"), 2, ("--members",)),
    Case("forecast-no-init", ("forecast", "--checkpoint", "{global_run}", "--out", "{ws}/out"),
         2, ("--init",)),
    Case("forecast-lead-0h", forecast(lead="0h"), 2, ("--lead",)),
    Case("forecast-plot-nosuch", forecast("--plot", "nosuch"), 2, ("nosuch",)),
    Case("forecast-plot-lead-not-a-lead", forecast("--plot", "temperature", "--plot-lead", "7h"),
         2, ("--plot-lead",)),
    Case("forecast-format-tiff", forecast("--format", "tiff"), 2, ("--format", "tiff")),
    Case("forecast-area-beyond-the-pole", forecast("--area", "95/0/80/10"), 2, ("--area",)),
    # forecast: checkpoints, stores and input files
    Case("forecast-missing-checkpoint", forecast(run="{ws}/nosuch"), 4, ("nosuch",), OUT),
    Case("forecast-weights-missing", forecast(run="{ws}/run"), 4, ("model.safetensors",),
         (damaged("missing"), existing_out)),
    Case("forecast-weights-truncated", forecast(run="{ws}/run"), 4, ("model.safetensors",),
         (damaged("truncated"), existing_out)),
    Case("forecast-weights-from-torch-save", forecast(run="{ws}/run"), 4, ("model.safetensors",),
         (damaged("torch.save"), existing_out)),
    Case("forecast-latest-to-nothing", forecast(run="{ws}/run"), 4, ("step-99999999",),
         (damaged("dangling latest"), existing_out)),
    Case("forecast-missing-store", forecast("--store", "{ws}/nosuch.zarr"), 4, ("nosuch.zarr",),
         OUT),
    Case("forecast-init-after-the-store", forecast(init="2017-01-05T00"), 6, ("2017-01-0",), OUT),
    Case("forecast-store-being-updated", forecast("--store", "{ws}/s.zarr"), 6,
         ("updat", "retry"), (copy_of("journal_store", "s.zarr"), existing_out)),
    Case("forecast-input-corrupt", forecast("--input", "{corrupt_grib}"), 3, (CORRUPT,), OUT),
    Case("forecast-input-missing", forecast("--input", "{ws}/nosuch.grib"), 3, ("nosuch.grib",),
         OUT),
    Case("forecast-input-1e30-K", forecast("--input", "{ens_hot}"), 3, ("ens-hot.grib", E30),
         OUT),
    # forecast: where the products go
    Case("forecast-out-a-file", forecast(), 7, ("out",), (plain_file("out"),)),
    Case("forecast-full-disk", forecast(), 7, ("No space left",), (full_disk("out", 48 << 10),)),
    Case("forecast-read-only", forecast(), 7, ("Read-only",), (read_only("out"),)),
    # interpolate and counterfactual: their times and alpha changes
    Case("interpolate-end-before-start", interpolate(end="2016-12-31T00"), 2, ("--end",)),
    Case("interpolate-start-30-february", interpolate(start="2017-02-30T00"), 2, ("--start",)),
    Case("interpolate-plot-time-tomorrow", interpolate("--plot-time", "tomorrow"), 2,
         ("--plot-time",)),
    Case("interpolate-input-every-0h", interpolate("--input-every", "0h"), 2, ("--input-every",)),
    Case("interpolate-plot-nosuch", interpolate("--plot", "nosuch"), 2, ("nosuch",)),
    Case("counterfactual-unknown-alpha", counterfactual("--set", "yr=2050"), 2, ("yr",)),
    Case("counterfactual-shift-without-value", counterfactual("--shift", "hour"), 2,
         ("--shift",)),
    Case("counterfactual-shift-year-abc", counterfactual("--shift-year", "abc"), 2,
         ("--shift-year",)),
    Case("counterfactual-init-30-february", counterfactual(init="2017-02-30T00"), 2,
         ("--init",)),
    # downscale
    Case("downscale-not-a-downscaling-checkpoint", downscale("--input", "{ensemble_grib}",
         run="{global_run}", start=INIT, end="2017-01-02T12"), 2, ("downscaling",), OUT),
    Case("downscale-start-tomorrow", downscale(start="tomorrow"), 2, ("--start",)),
    Case("downscale-end-before-start", downscale(end="2019-03-20T00"), 2, ("--end",)),
    Case("downscale-to-nosuch-grid", downscale("--to", "nosuch-grid"), 2, ("nosuch-grid",)),
    Case("downscale-plot-nosuch", downscale("--plot", "nosuch"), 2, ("nosuch",)),
    Case("downscale-input-corrupt", downscale("--input", "{corrupt_grib}"), 3, (CORRUPT,), OUT),
    # correct: the IFS file, its values, the checkpoint's experience, the output
    Case("correct-ifs-outside-the-checkpoints-experience", correct(), 3, (NOVEMBER,), OUT),
    Case("correct-ifs-1e30-K", correct(ifs="{n80_hot}"), 3, ("n80-hot.grib", E30), OUT),
    Case("correct-ifs-missing", correct(ifs="{ws}/nosuch.grib"), 3, ("nosuch.grib",), OUT),
    Case("correct-ifs-corrupt", correct(ifs="{corrupt_grib}"), 3, (CORRUPT,), OUT),
    Case("correct-mode-sideways", correct("--mode", "sideways"), 2, ("sideways",)),
    Case("correct-fields-nosuch", correct("--fields", "nosuch"), 2, ("nosuch",)),
    Case("correct-no-checkpoint", ("correct", "--ifs", "{n80}", "-o", "{ws}/out/c.grib2"), 2,
         ("checkpoint",)),
    Case("correct-weights-truncated", correct(ifs="{n80}", run="{ws}/run"), 4,
         ("model.safetensors",), (damaged("truncated"), existing_out)),
    Case("correct-output-a-folder", correct(ifs="{n80}"), 7, ("c.grib2",),
         (existing_out, folder_at("out/c.grib2"))),
    Case("correct-read-only", correct(ifs="{n80}"), 7, ("Read-only",), (read_only("out"),)),
    Case("correct-full-disk", correct(ifs="{n80}"), 7, ("No space left",),
         (full_disk("out", 48 << 10),)),
    # bias-correct
    Case("bias-correct-checkpoint-without-target", bias_correct(run="{global_run}"), 2,
         ("target",), OUT),
    Case("bias-correct-source-missing", bias_correct(source="{ws}/nosuch.grib"), 3,
         ("nosuch.grib",), OUT),
    Case("bias-correct-source-corrupt", bias_correct(source="{corrupt_grib}"), 3, (CORRUPT,),
         OUT),
    Case("bias-correct-source-1e30-K", bias_correct(source="{t2m_day_hot}"), 3,
         ("t2m-day-hot.grib", E30), OUT),
    Case("bias-correct-obs-missing", bias_correct("--obs", "{ws}/nosuch.zarr"), 4,
         ("nosuch.zarr",), OUT),
    Case("bias-correct-full-disk", bias_correct(), 7, ("No space left",),
         (full_disk("out", 48 << 10),)),
    Case("bias-correct-fields-nosuch", bias_correct("--fields", "nosuch"), 2, ("nosuch",)),
    # evaluate
    Case("evaluate-missing-product", evaluate(product="{ws}/nosuch.nc"), 3, ("nosuch.nc",), OUT),
    Case("evaluate-product-not-netcdf", evaluate(product="{ws}/junk.nc"), 3, ("junk.nc",),
         (existing_out, plain_file("junk.nc", b"<html>404 Not Found</html>\n"))),
    Case("evaluate-product-truncated", evaluate(product="{ws}/cut.nc"), 3, ("cut.nc",),
         (existing_out, truncated_copy("global_product", "cut.nc"))),
    Case("evaluate-missing-truth", evaluate(truth="{ws}/nosuch.zarr"), 4, ("nosuch.zarr",), OUT),
    Case("evaluate-truth-lacks-the-fields", evaluate(truth="{half_store}"), 4, ("temperature",),
         OUT),
    Case("evaluate-climatology-one-time", evaluate("--climatology", "2017-01-01"), 2,
         ("--climatology",)),
    Case("evaluate-climatology-tomorrow", evaluate("--climatology", "tomorrow/2017-01-02"), 2,
         ("--climatology",)),
    Case("evaluate-map-lead-5x", evaluate("--map-lead", "5x"), 2, ("--map-lead",)),
    Case("evaluate-out-a-file", evaluate(), 7, ("out",), (plain_file("out"),)),
    Case("evaluate-read-only", evaluate(), 7, ("Read-only",), (read_only("out"),)),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_bad_input_is_one_line_an_exit_code_and_nothing_changed(
    case: Case,
    workspace: Workspace,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(workspace.root)  # a default output path lands where it is watched
    monkeypatch.delenv("ATMOREP_CHECKPOINT", raising=False)
    for setup in case.setup:
        setup(workspace)
    args = workspace.format(case.args)
    roots = workspace.watched()
    before = tree_fingerprint(*roots)
    outcome = isolated(args, workspace.root) if case.isolated else in_process(args, capfd)
    problems = _problems(case, outcome) + changes(before, tree_fingerprint(*roots))
    assert not problems, "\n".join(problems)


def _problems(case: Case, outcome: Outcome) -> list[str]:
    """What is wrong with the outcome, each in a line: all at once, for whoever fixes it."""
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]  # as a mail shows it
    found = []
    if outcome.code != case.code:
        found.append(f"exit {outcome.code}, expected {case.code}")
    if "Traceback" in outcome.stderr:
        found.append(f"a traceback{_last_frame(outcome.stderr)}: {lines[-1]}")
    elif len(lines) != 1 or not lines[0].startswith("error:"):
        found.append(f"{len(lines)} lines on stderr, not one error line: {lines[:4]}")
    elif missing := [p for p in case.words if not re.search(p, lines[0])]:
        found.append(f"{missing} not in: {lines[0]}")
    return found


def _last_frame(traceback_text: str) -> str:
    """Where the traceback ends, e.g. ` at products/experience.py:275 in store_values`."""
    frames = re.findall(r'File "(.+)", line (\d+), in (\S+)', traceback_text)
    if not frames:
        return ""
    file, number, function = frames[-1]
    return f" at {Path(file).parent.name}/{Path(file).name}:{number} in {function}"


# --- what must work ---------------------------------------------------------------------------


def test_paths_with_dot_dot_work_in_every_command(
    workspace: Workspace, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--store ../s.zarr` and the like: resolved before any library sees them."""
    GOOD_RECIPE(workspace)
    shutil.copy(workspace["ensemble_grib"], workspace.root / "ens.grib")
    (workspace.root / "work").mkdir()
    monkeypatch.chdir(workspace.root / "work")
    runs = [
        ("prepare", "../ens.grib", "--store", "../s.zarr", "--member", "mean", "--json"),
        ("info", "../s.zarr", "--json"),
        ("train", "../recipe.yaml", "--run-dir", "../run", "--set", "data.store=../s.zarr"),
        ("forecast", "--checkpoint", "../run", "--store", "../s.zarr", "--init", INIT, "--lead",
         "12h", "--out", "../fc", "--format", "netcdf", "--json"),
        ("evaluate", f"../fc/{STEM}.nc", "--truth", "../s.zarr", "--out", "../scores", "--json"),
    ]  # fmt: skip
    for args in runs:
        outcome = in_process(args, capfd)
        assert outcome.code == 0, (args, outcome.stderr)
    assert json.loads(outcome.stdout)["scores"]
    assert (workspace.root / "scores" / "scores.json").exists()


SPELLINGS = (
    "2017-01-02", "20170102", "2017010200", "20170102T0000", "2017-01-02 00:00",
    "2017-01-02T00:00Z", "2017-01-02T00:00:00+00:00", "2017-01-02T01:00+01:00",
    "2017-01-01T19:00-05:00",
)  # fmt: skip


def test_every_spelling_of_the_init_time_names_the_same_product(
    workspace: Workspace, capfd: pytest.CaptureFixture[str]
) -> None:
    """ISO 8601 as `datetime.fromisoformat` reads it, offsets converted to UTC, and the compact
    YYYYMMDD and YYYYMMDDHH: each finds the product of 2017-01-02 00 UTC up to date."""
    first = in_process(workspace.format(forecast("--format", "netcdf", "--json")), capfd)
    assert first.code == 0, first.stderr
    made = json.loads(first.stdout)
    assert made["init"] == "2017-01-02T00:00:00" and not made["skipped"]
    for spelling in SPELLINGS:
        args = forecast("--format", "netcdf", "--json", init=spelling)
        again = in_process(workspace.format(args), capfd)
        assert again.code == 0, (spelling, again.stderr)
        manifest = json.loads(again.stdout)
        assert manifest["skipped"] and manifest["outputs"] == made["outputs"], spelling


def test_resume_before_the_first_checkpoint_starts_afresh(
    workspace: Workspace, capfd: pytest.CaptureFixture[str]
) -> None:
    GOOD_RECIPE(workspace)
    outcome = in_process(workspace.format(train("--resume", "--json")), capfd)
    assert outcome.code == 0, outcome.stderr
    assert len(outcome.stderr.splitlines()) <= 1  # at most a note that it starts afresh
    run_folder = workspace.root / "run"
    assert (run_folder / "latest").read_text().strip() == "step-00000002"
    assert _latest_weights(run_folder).stat().st_size > 0


def test_input_outside_the_experience_is_corrected_when_allowed(
    workspace: Workspace, capfd: pytest.CaptureFixture[str]
) -> None:
    """correct-ifs-outside-the-checkpoints-experience with `--allow-unfamiliar`: corrected,
    with a warning in the log and the findings in the manifest."""
    outcome = in_process(workspace.format(correct("--allow-unfamiliar", "--json")), capfd)
    assert outcome.code == 0, outcome.stderr
    findings = json.loads(outcome.stdout)["unfamiliar"]
    assert any(re.search(NOVEMBER, finding) for finding in findings), findings
    log = (workspace.root / "out" / "atmorep.log").read_text()
    assert re.search("warning", log, re.IGNORECASE), log


def test_a_store_being_updated_shows_only_its_committed_times(
    workspace: Workspace, capfd: pytest.CaptureFixture[str]
) -> None:
    """The append of 2 January was killed: `info` shows 1 January's two times, nothing more."""
    copy_of("journal_store", "s.zarr")(workspace)
    outcome = in_process(workspace.format(("info", "{ws}/s.zarr", "--json")), capfd)
    assert outcome.code == 0, outcome.stderr
    fields = json.loads(outcome.stdout)["fields"]
    assert sorted(f["name"] for f in fields) == ["geopotential", "temperature"]
    times = {f["name"]: (f["first_time"], f["times"]) for f in fields}
    assert set(times.values()) == {("2017-01-01T00:00:00", 2)}, times


def test_implausible_values_are_ingested_when_allowed(
    workspace: Workspace, capfd: pytest.CaptureFixture[str]
) -> None:
    """prepare-1e30-K with `--allow-implausible`, for experiments: the store takes the file."""
    copy_of("half_store", "s.zarr")(workspace)
    args = prepare_into("{t2m_hot}", "{ws}/s.zarr", "--allow-implausible", "--json")
    outcome = in_process(workspace.format(args), capfd)
    assert outcome.code == 0, outcome.stderr
    [report] = json.loads(outcome.stdout)
    assert report["status"] == "ingested" and report["last_time"] == "2019-03-24T23:00:00"
