"""What every product command (`product_kinds`, `correct_job`, `bias_correct_job`) does around
its core.

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
from atmorep_core.io.product_stash import load_products, save_products
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


@dataclass(frozen=True, kw_only=True)
class ProductJob:
    """The settings every product command shares: model, input, output folder and formats
    (by keyword only: a reordered field never takes another's value)."""

    checkpoint: Path
    out: Path
    store: Path | None = None
    grib_inputs: tuple[Path, ...] = ()
    statistics_store: Path | None = None
    outputs: OutputOptions = field(default_factory=OutputOptions)
    device: str = "cpu"
    force: bool = False  # recompute even when the outputs are up to date
    allow_unfamiliar: bool = False  # process input outside the checkpoint's experience
    allow_implausible: bool = False  # ingest --input values outside their plausible range

    def shared_request(self, trained: TrainedModel) -> dict[str, Any]:
        """What the outputs depend on besides the command's own request."""
        return {
            "checkpoint": str(trained.folder.resolve()),
            "checkpoint_step": trained.step,
            "store": None if self.store is None else str(self.store.resolve()),
            "inputs": [str(p.resolve()) for p in self.grib_inputs],
            "statistics_store": self.statistics_store and str(self.statistics_store),
            "outputs": asdict(self.outputs),
            "allow_implausible": self.allow_implausible,
        }

    def input_store(self, trained: TrainedModel) -> Store:
        """The input as one store: all GRIB files must make one series without gaps."""
        if self.grib_inputs:
            fields = tuple(f.name for f in trained.config.fields)
            cache = self.out / INPUT_CACHE
            prepare(list(self.grib_inputs), cache, self._ingest_options(fields))
            return Store.open(cache)
        return _open(self.store or trained.training_store, "input store")

    def _ingest_options(self, fields: tuple[str, ...]) -> IngestOptions:
        return IngestOptions(fields=fields, allow_implausible=self.allow_implausible)

    def input_series(self, trained: TrainedModel) -> InputSeries:
        """The input as one store per GRIB file and run of regular time steps, so that files may
        leave gaps between and inside them."""
        if not self.grib_inputs:
            return InputSeries([self.input_store(trained)])
        fields = tuple(f.name for f in trained.config.fields)
        stores = []
        for path in self.grib_inputs:
            digest = sha256_of(path)[:16]
            runs = time_runs(grib_read.scan(path), self._ingest_options(fields))
            for number, run in enumerate(runs):
                cache = self.out / INPUT_FILES / f"{digest}-{number}.zarr"
                prepare([path], cache, replace(self._ingest_options(fields), times=run))
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

    def familiar_file(self, trained: TrainedModel, source: Path, grid: Store) -> tuple[str, ...]:
        """As `familiar`, for a GRIB file that `correct` reads onto the grid of store `grid`."""
        return check_grib(
            trained,
            source,
            grid,
            self.statistics_store,
            self.allow_unfamiliar,
            self.allow_implausible,
        )

    def statistics(self, trained: TrainedModel) -> Store | None:
        """The store of local normalisation statistics; None if every field is global."""
        if all(f.normalisation != "local" for f in trained.config.fields):
            return None
        return _open(self.statistics_store or trained.training_store, "statistics store")


def run_product(run: ProductRun, force: bool, make: Make) -> Manifest:
    """`make` the products under the folder's lock unless an earlier run already did, and move
    them into place with their manifest (`ProductRun.finish`): the manifest, with `"skipped":
    True` if it was up to date, and the seconds `make` took. Products kept by a killed run
    (`ProductRun.computed`) are dropped once the folder is committed or the run fails."""
    with run.locked():
        try:
            earlier = None if force else run.up_to_date()
            if earlier is not None:
                return {**earlier, "skipped": True}
            started = time.perf_counter()
            outputs, summary = make(run)
            summary = {**summary, "seconds": round(time.perf_counter() - started, 2)}
            return {**run.finish(outputs, summary), "skipped": False}
        finally:
            run.drop_computed()


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
            outputs = _kept_or_computed(run, job.force, lambda: compute(trained))
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


def _kept_or_computed(
    run: ProductRun, force: bool, compute: Callable[[], Sequence[Output]]
) -> Sequence[Output]:
    """The products a killed run of this request kept (unless --force), else computed now and
    kept until the run's files are committed."""
    kept = None if force else load_products(run.computed)
    if kept is not None and kept[1].get("request") == run.plain_request:
        products, note = kept
        return [
            Output(product, o["suffix"], o["maps"], tuple(o["unfamiliar"]))
            for product, o in zip(products, note["outputs"], strict=True)
        ]
    outputs = compute()
    described = [
        {"suffix": o.suffix, "maps": o.maps, "unfamiliar": list(o.unfamiliar)} for o in outputs
    ]
    note = {"request": run.plain_request, "outputs": described}
    save_products(run.computed, [o.product for o in outputs], note)
    return outputs


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


def sha256_of(path: Path) -> str:
    """A file's SHA-256, hex: reruns on the same input contents are up to date."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _open(path: Path, role: str) -> Store:
    if not path.exists():
        raise StoreError(f"{path}: the {role} does not exist")
    return Store.open(path)
