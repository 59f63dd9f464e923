"""What every product command (forecast, interpolate, counterfactual) does around its core.

Find the input: a store (`--store`), GRIB files (`--input`, ingested into a cache store in the
output folder with `prepare`, so a rerun reads nothing twice) or, by default, the store the
checkpoint was trained on. Locally normalised fields take their statistics from the training
store (a few days of input cannot give per-grid-point monthly statistics); `--stats-store`
names another. Guard the output folder (`io.run_folder.ProductRun`: one writer, idempotent
reruns, every file committed together with the manifest) and write the products. A run that
fails leaves the folder as it was: its staged files and the input caches it created are removed.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from atmorep_core.data.ingest_plan import IngestOptions, time_runs
from atmorep_core.data.prepare import prepare
from atmorep_core.engine.series import InputSeries
from atmorep_core.engine.trained import TrainedModel, load_trained
from atmorep_core.errors import StoreError
from atmorep_core.io import grib_read
from atmorep_core.io.product import Product, ProductGrid
from atmorep_core.io.run_folder import ProductRun
from atmorep_core.io.store import Store
from atmorep_core.product_outputs import OutputOptions, write_outputs
from atmorep_core.products.experience import check_grib, check_stores

INPUT_CACHE = ".inputs.zarr"  # GRIB input of one product, one series
INPUT_FILES = ".inputs"  # GRIB input by file and run of regular steps, named by checksum

Manifest = dict[str, Any]
# Writes a run's products into its staging folder; returns the files written there and the
# summary for the manifest.
Make = Callable[[ProductRun], tuple[Sequence[Path], dict[str, Any]]]
# The products of a run from the model (the job's inputs are read inside).
Compute = Callable[[TrainedModel], Sequence["Output"]]
# Refuses a checkpoint that cannot answer the job's question, before any input is read.
Check = Callable[[TrainedModel], object]


@dataclass(frozen=True)
class ProductJob:
    """The settings every product command shares: model, input, output folder and formats."""

    checkpoint: Path
    out: Path
    store: Path | None = None
    grib_inputs: tuple[Path, ...] = ()
    statistics_store: Path | None = None
    outputs: OutputOptions = field(default_factory=OutputOptions)
    device: str = "cpu"
    force: bool = False  # recompute even when the outputs are up to date
    allow_unfamiliar: bool = False  # process input outside the checkpoint's experience

    def shared_request(self, trained: TrainedModel) -> dict[str, Any]:
        """What the outputs depend on besides the command's own request."""
        return {
            "checkpoint": str(trained.folder.resolve()),
            "checkpoint_step": trained.step,
            "store": None if self.store is None else str(self.store.resolve()),
            "inputs": [str(p.resolve()) for p in self.grib_inputs],
            "statistics_store": self.statistics_store and str(self.statistics_store),
            "outputs": asdict(self.outputs),
        }

    def input_store(self, trained: TrainedModel) -> Store:
        """The input as one store: all GRIB files must make one series without gaps."""
        if self.grib_inputs:
            return _ingest(self.grib_inputs, self.out / INPUT_CACHE, trained)
        return _open(self.store or trained.training_store, "input store")

    def input_series(self, trained: TrainedModel) -> InputSeries:
        """The input as one store per GRIB file and run of regular time steps, so that files may
        leave gaps between and inside them."""
        if not self.grib_inputs:
            return InputSeries([self.input_store(trained)])
        fields = tuple(f.name for f in trained.config.fields)
        stores = []
        for path in self.grib_inputs:
            digest = sha256_of(path)[:16]
            runs = time_runs(grib_read.scan(path), IngestOptions(fields=fields))
            for number, run in enumerate(runs):
                cache = self.out / INPUT_FILES / f"{digest}-{number}.zarr"
                prepare([path], cache, IngestOptions(fields=fields, times=run))
                stores.append(Store.open(cache))
        return InputSeries(stores)

    def familiar(
        self,
        trained: TrainedModel,
        stores: Sequence[Store],
        first: datetime,
        last: datetime,
        whole: bool = True,
    ) -> tuple[str, ...]:
        """What in the input from `first` to `last` lies outside the checkpoint's experience
        (`experience.check_stores`): InputDataError, or the findings if allowed."""
        return check_stores(
            trained, stores, first, last, self.statistics_store, self.allow_unfamiliar, whole
        )

    def familiar_file(
        self, trained: TrainedModel, source: Path, grid: Store, allow_implausible: bool = False
    ) -> tuple[str, ...]:
        """As `familiar`, for a GRIB file that `correct` reads onto the grid of store `grid`."""
        return check_grib(
            trained, source, grid, self.statistics_store, self.allow_unfamiliar, allow_implausible
        )

    def statistics(self, trained: TrainedModel) -> Store | None:
        """The store of local normalisation statistics; None if every field is global."""
        if all(f.normalisation != "local" for f in trained.config.fields):
            return None
        return _open(self.statistics_store or trained.training_store, "statistics store")


def run_product(run: ProductRun, force: bool, make: Make) -> Manifest:
    """`make` the products under the folder's lock unless an earlier run already did, and move
    them into place with their manifest (`ProductRun.finish`): the manifest, with `"skipped":
    True` if it was up to date, and the seconds `make` took."""
    with run.locked():
        earlier = None if force else run.up_to_date()
        if earlier is not None:
            return {**earlier, "skipped": True}
        started = time.perf_counter()
        outputs, summary = make(run)
        summary = {**summary, "seconds": round(time.perf_counter() - started, 2)}
        return {**run.finish(outputs, summary), "skipped": False}


@dataclass(frozen=True)
class Output:
    """One product of a run and where it goes: the run's stem + `suffix`, with maps or not."""

    product: Product
    suffix: str = ""
    maps: bool = True
    unfamiliar: tuple[str, ...] = ()  # what of its input the checkpoint never saw (allowed)


def run_job(
    job: ProductJob,
    stem: str,
    request: dict[str, Any],
    compute: Compute,
    check: Check | None = None,
) -> Manifest:
    """Load the model (and `check` it), then `compute` the products from the input and write
    them (`run_product`); `request` is what they depend on besides the job's shared settings."""
    trained = load_trained(job.checkpoint, job.device)
    if check is not None:
        check(trained)
    run = ProductRun(job.out, stem, {**job.shared_request(trained), **request})

    def make(run: ProductRun) -> tuple[list[Path], dict[str, Any]]:
        with _new_caches_removed_on_failure(run.folder):
            outputs = compute(trained)
            written = []
            for output in outputs:
                named = ProductRun(run.folder, run.stem + output.suffix, run.request)
                options = job.outputs if output.maps else replace(job.outputs, plot_fields=())
                written += write_outputs(named, output.product, options)
        summary = product_summary(outputs[0].product)
        summary["unfamiliar"] = list(dict.fromkeys(f for o in outputs for f in o.unfamiliar))
        if len(outputs) > 1:
            summary["products"] = [run.stem + output.suffix for output in outputs]
        return written, summary

    return run_product(run, job.force, make)


def product_summary(product: Product) -> dict[str, Any]:
    """The manifest's description of a product."""
    return {
        "init": product.init.isoformat(),
        "steps_hours": list(product.steps_hours),
        "members": product.members,
        "fields": [f.name for f in product.fields],
        "grid": _grid_summary(product.fields[0].grid),
    }


def _grid_summary(grid: ProductGrid) -> dict[str, Any]:
    """The grid's parameters; a regular grid's as before rotated store grids (no pole)."""
    return {key: value for key, value in asdict(grid).items() if value is not None}


@contextmanager
def _new_caches_removed_on_failure(out: Path) -> Iterator[None]:
    """Remove the input caches a failing run created in `out` (the folder's lock is held)."""
    before = _input_caches(out)
    try:
        yield
    except BaseException:
        for path in sorted(_input_caches(out) - before):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        raise


def _input_caches(out: Path) -> set[Path]:
    """`.inputs.zarr` with its lock and journal, `.inputs/` and each store (and lock) in it."""
    if not out.is_dir():
        return set()
    found = {p for p in out.iterdir() if p.name.startswith((INPUT_CACHE, INPUT_FILES))}
    if (out / INPUT_FILES).is_dir():
        found |= set((out / INPUT_FILES).iterdir())
    return found


def _ingest(paths: Sequence[Path], cache: Path, trained: TrainedModel) -> Store:
    """The model's fields of GRIB files prepared into a cache store (a rerun reads nothing)."""
    fields = tuple(f.name for f in trained.config.fields)
    prepare(list(paths), cache, IngestOptions(fields=fields))
    return Store.open(cache)


def sha256_of(path: Path) -> str:
    """A file's SHA-256, hex: reruns on the same input contents are up to date."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _open(path: Path, role: str) -> Store:
    if not path.exists():
        raise StoreError(f"{path}: the {role} does not exist")
    return Store.open(path)
