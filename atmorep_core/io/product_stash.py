"""A run's computed products kept on disk until its files are committed.

A run killed while writing or moving its files is finished by the next run of the same request
from these numbers instead of computing them again: its files are then byte for byte those the
killed run would have written (a computation on the CPU can differ in its last bit from one run
to the next). The stash is one `.npz` (no pickles: a JSON header as bytes and one array per
field), written under a temporary name and renamed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from atmorep_core.grid import LatLonGrid
from atmorep_core.io.product import Product, ProductField, ProductGrid, atomic_output
from atmorep_core.rotated_grid import RotatedGrid

_HEADER = "header"


def save_products(path: Path, products: Sequence[Product], note: dict[str, Any]) -> None:
    """Write `products` and a JSON-able `note` (what they answer) to `path`."""
    arrays: dict[str, Any] = {}
    described = []
    for number, product in enumerate(products):
        for field in product.fields:
            arrays[f"{number}/{field.name}"] = field.values
        described.append(_describe(product))
    header = json.dumps({"note": note, "products": described}).encode()
    arrays[_HEADER] = np.frombuffer(header, dtype=np.uint8)
    with atomic_output(path) as temporary, open(temporary, "wb") as file:
        np.savez(file, **arrays)


def load_products(path: Path) -> tuple[list[Product], dict[str, Any]] | None:
    """The products and note saved in `path`; None if there is none or it does not read."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            header = json.loads(saved[_HEADER].tobytes())
            products = []
            for number, described in enumerate(header["products"]):
                names = [f["name"] for f in described["fields"]]
                values = {name: saved[f"{number}/{name}"] for name in names}
                products.append(_product(described, values))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return products, header["note"]


def _describe(product: Product) -> dict[str, Any]:
    return {
        "init": product.init.isoformat(),
        "steps_hours": list(product.steps_hours),
        "kind": product.kind,
        "attributes": dict(product.attributes),
        "fields": [
            {
                "name": f.name,
                "level_type": f.level_type,
                "levels": list(f.levels),
                "grid": {"rotated": isinstance(f.grid, RotatedGrid), **asdict(f.grid)},
            }
            for f in product.fields
        ],
    }


def _product(described: dict[str, Any], values: dict[str, np.ndarray]) -> Product:
    """The product `described`, its fields' values by field name."""
    fields = tuple(
        ProductField(
            f["name"], f["level_type"], tuple(f["levels"]), _grid(f["grid"]), values[f["name"]]
        )
        for f in described["fields"]
    )
    return Product(
        datetime.fromisoformat(described["init"]),
        tuple(described["steps_hours"]),
        fields,
        described["kind"],
        described["attributes"],
    )


def _grid(described: dict[str, Any]) -> ProductGrid:
    settings = {k: v for k, v in described.items() if k != "rotated"}
    if described["rotated"]:
        return RotatedGrid(**settings)
    pole = settings.get("south_pole")
    return LatLonGrid(**{**settings, "south_pole": None if pole is None else tuple(pole)})
