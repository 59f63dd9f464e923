"""Product -> GRIB2: one message per field, member, step and level, written atomically.

MARS labels follow ECMWF's conventions so that eccodes tools and cfgrib sort the messages as they
would an IFS forecast:
- class "rd" (research department): the output is experimental, not an operational ECMWF product;
- a deterministic (1-member) product is stream "oper", type "fc", without a member number;
- an ensemble is stream "enfo", type "pf" (perturbed forecast) with number 1..N (ECMWF keeps 0
  for the control forecast, "cf", which AtmoRep does not make) and numberOfForecastsInEnsemble N;
- with `statistics=True` an ensemble also gets its mean (type "em") and standard deviation
  (type "es", ddof=1) per field, step and level; a deterministic product has none to add.
cfgrib opens one type at a time from a file with several:
`filter_by_keys={"dataType": "pf"}` (or "em", "es").

Levels are written as the store records them, except that GRIB2 holds screen-level parameters
(2t from ERA5's "surface" 0) on "heightAboveGround" 2 (see `grib_write.grib_level`).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

from atmorep_core.io.grib_write import GribMessage, GribWriter
from atmorep_core.io.product import Product, ProductField

RESEARCH_CLASS = "rd"


def write_grib(
    product: Product, path: Path | str, *, bits_per_value: int = 16, statistics: bool = False
) -> int:
    """Write `product` as GRIB2 to `path` (atomically); returns the number of messages written.

    Values come back within (max - min) / (2**bits_per_value - 1) of each 2-D field's range.
    """
    with GribWriter(path) as writer:
        for message in product_messages(
            product, bits_per_value=bits_per_value, statistics=statistics
        ):
            writer.write(message)
    return writer.count


def product_messages(
    product: Product, *, bits_per_value: int = 16, statistics: bool = False
) -> Iterator[GribMessage]:
    """The GRIB2 messages of `product`: per field, step and level, the members then em, es."""
    for product_field in product.fields:
        yield from _field_messages(product, product_field, bits_per_value, statistics)


def _field_messages(
    product: Product, product_field: ProductField, bits_per_value: int, statistics: bool
) -> Iterator[GribMessage]:
    ensemble = product.members > 1
    labelled = partial(
        GribMessage,
        param=product_field.name,
        level_type=product_field.level_type,
        base_time=product.init,
        grid=product_field.grid,
        ecmwf_class=RESEARCH_CLASS,
        stream="enfo" if ensemble else "oper",
        bits_per_value=bits_per_value,
        ensemble_size=product.members if ensemble else None,
    )
    with_statistics = statistics and ensemble
    mean = product_field.mean() if with_statistics else None
    spread = product_field.spread() if with_statistics else None
    for s, step in enumerate(product.steps_hours):
        for i, level in enumerate(product_field.levels):
            at = partial(labelled, level=level, step_hours=step)
            for member, values in enumerate(product_field.values[:, s, i], start=1):
                if ensemble:
                    yield at(values=values, data_type="pf", number=member)
                else:
                    yield at(values=values, data_type="fc")
            if mean is not None and spread is not None:
                yield at(values=mean[s, i], data_type="em")
                yield at(values=spread[s, i], data_type="es")
