"""Write a product in the formats asked for into a product run's staging folder, from which
`ProductRun.finish` moves them into place together with their manifest.

A format is one writer module plus one line in `FORMATS`: its name for `--format`, the suffix of
the file it writes and its writer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from atmorep_core.errors import ConfigError
from atmorep_core.io.area_means_csv import write_area_means_csv
from atmorep_core.io.filesystem import writing
from atmorep_core.io.grib_products import write_grib
from atmorep_core.io.netcdf import write_netcdf
from atmorep_core.io.product import Product
from atmorep_core.io.run_folder import ProductRun


@dataclass(frozen=True)
class OutputFormat:
    """A file format of products: the suffix of its file and the function writing it there."""

    suffix: str
    write: Callable[[Product, Path], object]


# Written in this order, whatever the order asked for.
FORMATS = {
    "grib": OutputFormat(".grib2", write_grib),
    "netcdf": OutputFormat(".nc", write_netcdf),
    "csv": OutputFormat(".csv", write_area_means_csv),
}
DEFAULT_FORMATS = ("grib", "netcdf")


@dataclass(frozen=True)
class OutputOptions:
    """Which files a run writes."""

    formats: tuple[str, ...] = DEFAULT_FORMATS
    plot_fields: tuple[str, ...] = ()  # maps of these fields ...
    plot_steps: tuple[int, ...] | None = None  # ... at these lead hours; None: the last one

    def __post_init__(self) -> None:
        unknown = [f for f in self.formats if f not in FORMATS]
        if unknown or not self.formats:
            raise ConfigError(
                f"--format {','.join(self.formats)}: choose from {', '.join(FORMATS)}"
            )


def write_outputs(run: ProductRun, product: Product, options: OutputOptions) -> list[Path]:
    """The staged paths written: one file per format, then the maps (in `maps/STEM/`)."""
    written = []
    for name, output in FORMATS.items():
        if name in options.formats:
            with writing(run.path(output.suffix)):  # a full disk names the final path
                output.write(product, run.staged(output.suffix))
            written.append(run.staged(output.suffix))
    if options.plot_fields:
        written += _maps(run, product, options.plot_fields, options.plot_steps)
    return written


def _maps(
    run: ProductRun, product: Product, fields: Sequence[str], steps: Sequence[int] | None
) -> list[Path]:
    from atmorep_core.plotting import plot_maps  # matplotlib is slow to import

    names = [f.name for f in product.fields]
    for name in fields:
        if name not in names:
            raise ConfigError(f"--plot {name}: not a field of the product ({', '.join(names)})")
    chosen = list(steps) if steps else [product.steps_hours[-1]]
    for step in chosen:
        if step not in product.steps_hours:
            raise ConfigError(
                f"--plot-lead {step}h: not a lead of the product {product.steps_hours}"
            )
    return plot_maps(product, run.staging / "maps" / run.stem, fields=fields, steps=chosen)
