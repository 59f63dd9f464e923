"""Write a product in the formats asked for into a product run's staging folder, from which
`ProductRun.finish` moves them into place together with their manifest."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from atmorep_core.errors import ConfigError
from atmorep_core.io.filesystem import writing
from atmorep_core.io.grib_products import write_grib
from atmorep_core.io.netcdf import write_netcdf
from atmorep_core.io.product import Product
from atmorep_core.io.run_folder import ProductRun

FORMATS = ("grib", "netcdf")


@dataclass(frozen=True)
class OutputOptions:
    """Which files a run writes."""

    formats: tuple[str, ...] = FORMATS
    plot_fields: tuple[str, ...] = ()  # maps of these fields ...
    plot_steps: tuple[int, ...] | None = None  # ... at these lead hours; None: the last one
    grib_statistics: bool = False  # also ensemble mean and spread messages in the GRIB file

    def __post_init__(self) -> None:
        unknown = [f for f in self.formats if f not in FORMATS]
        if unknown or not self.formats:
            raise ConfigError(
                f"--format {','.join(self.formats)}: choose from {', '.join(FORMATS)}"
            )


def write_outputs(run: ProductRun, product: Product, options: OutputOptions) -> list[Path]:
    """The staged paths written: GRIB2 and/or NetCDF, then the maps (in `maps/STEM/`)."""
    written = []
    if "grib" in options.formats:
        with writing(run.path(".grib2")):
            write_grib(product, run.staged(".grib2"), statistics=options.grib_statistics)
        written.append(run.staged(".grib2"))
    if "netcdf" in options.formats:
        write_netcdf(product, run.staged(".nc"))
        written.append(run.staged(".nc"))
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
