"""The store as a self-describing zarr v3 dataset that plain xarray opens without atmorep:
`xr.open_zarr(STORE, group=FIELD)` or `xr.open_datatree(STORE, engine="zarr")`.

- every array names its dimensions (`dimension_names`);
- `time` has CF units ("seconds since 1970-01-01", proleptic Gregorian), `level`, `lat` and
  `lon` their CF attributes and axes, and `data` its units, long and standard name;
- each field group holds its own `lat` and `lon` (copies of the root's), so that a field opened
  alone is labelled;
- the root's `zarr.json` holds the consolidated metadata of the whole hierarchy, rewritten (one
  atomic write) right after each ingest commits, and kept as it was by the ingest's own
  writes: a plain reader sees the last commit's time steps only, also while an ingest runs.
  A run killed between its commit and that rewrite leaves the previous commit's, until the
  next `prepare` opens the store.

A store written before this description existed reads as before; `describe_field` adds it at the
next ingest's commit (the time values and everything else stay as they were).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from atmorep_core.errors import StoreError
from atmorep_core.grid import LatLonGrid
from atmorep_core.io.cf_names import field_attributes, level_attributes

TIME_ATTRIBUTES = {
    "standard_name": "time",
    "long_name": "valid time (UTC)",
    "units": "seconds since 1970-01-01 00:00:00",
    "calendar": "proleptic_gregorian",
    "axis": "T",
}
_STATISTICS = {
    "stats/global_count": (("level",), "values per level over everything ingested"),
    "stats/global_mean": (("level",), "mean per level over everything ingested"),
    "stats/global_m2": (("level",), "sum of squared deviations per level"),
    "stats/month": (("month",), "month of each statistics row, YYYYMM"),
    "stats/local_count": (("month",), "time steps in the month"),
    "stats/local_mean": (("month", "level", "lat", "lon"), "mean per grid point and month"),
    "stats/local_m2": (("month", "level", "lat", "lon"), "sum of squared deviations per point"),
    "stats/local_missing": (("month", "level", "lat", "lon"), "time steps missing (NaN) per point"),
}
_METADATA = "zarr.json"


def axis_attributes(grid: LatLonGrid) -> dict[str, dict[str, Any]]:
    """CF attributes of the `lat` and `lon` axes: geographic, or the rotated frame's."""
    if grid.is_rotated:
        return {
            "lat": {"standard_name": "grid_latitude", "units": "degrees", "axis": "Y"},
            "lon": {"standard_name": "grid_longitude", "units": "degrees", "axis": "X"},
        }
    return {
        "lat": {"standard_name": "latitude", "units": "degrees_north", "axis": "Y"},
        "lon": {"standard_name": "longitude", "units": "degrees_east", "axis": "X"},
    }


def array_description(
    path: str, field: str, units: str, level_type: str
) -> tuple[tuple[str, ...], dict[str, Any]]:
    """Dimension names and CF attributes of one of a field's arrays (path inside its group)."""
    if path == "data":
        return ("time", "level", "lat", "lon"), field_attributes(field, units)
    if path == "time":
        return ("time",), dict(TIME_ATTRIBUTES)
    if path == "level":
        return ("level",), level_attributes(level_type)
    dims, long_name = _STATISTICS[path]
    return dims, {"long_name": long_name}


def describe_field(group: zarr.Group, folder: Path, grid: LatLonGrid) -> None:
    """Give a field written before the store described itself its dimension names, attributes
    and own `lat` / `lon`; nothing to do on a described one."""
    attrs = dict(group.attrs)
    for path in ("data", "time", "level", *_STATISTICS):
        if (folder / path / _METADATA).is_file():
            dims, wanted = array_description(
                path, str(attrs["name"]), str(attrs["units"]), str(attrs["level_type"])
            )
            _describe_array(folder / path / _METADATA, dims, wanted)
    add_axes(group, grid)


def add_axes(group: zarr.Group, grid: LatLonGrid) -> None:
    """The store's `lat` and `lon` (as the root has them) in a group, where missing."""
    values = {"lat": grid.lat_axis, "lon": grid.lon_axis}
    for axis, attrs in axis_attributes(grid).items():
        if axis not in group:
            data = np.asarray(values[axis], dtype="float64")
            group.create_array(axis, data=data, dimension_names=[axis], attributes=attrs)


def write_root(store: Path, attributes: dict[str, Any], consolidate: bool) -> None:
    """Replace the root's `zarr.json` in one step by one with `attributes` and, with
    `consolidate`, the metadata of every node below it as they are on disk now (else the
    consolidated metadata it has); no write where nothing changes."""
    root = json.loads((store / _METADATA).read_text())
    consolidated = _consolidated(store) if consolidate else root.get("consolidated_metadata")
    updated = root | {"attributes": attributes, "consolidated_metadata": consolidated}
    if updated != root:
        _replace_json(store / _METADATA, updated)


def _consolidated(store: Path) -> dict[str, Any]:
    nodes = {}
    for metadata in sorted(store.rglob(_METADATA)):
        if metadata.parent == store:
            continue
        try:
            node = json.loads(metadata.read_text())
        except ValueError as error:
            raise StoreError(f"{metadata}: corrupt zarr.json ({error})") from error
        if node.get("node_type") == "group":  # as zarr marks a group without children's copy
            node["consolidated_metadata"] = _inline({})
        nodes[metadata.parent.relative_to(store).as_posix()] = node
    return _inline(nodes)


def _inline(nodes: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "inline", "must_understand": False, "metadata": nodes}


def _describe_array(metadata: Path, dims: tuple[str, ...], wanted: dict[str, Any]) -> None:
    node = json.loads(metadata.read_text())
    attributes = node.get("attributes", {})
    if node.get("dimension_names") == list(dims) and attributes.items() >= wanted.items():
        return
    node |= {"dimension_names": list(dims), "attributes": attributes | wanted}
    _replace_json(metadata, node)


def _replace_json(path: Path, content: dict[str, Any]) -> None:
    """Written beside and renamed over: readers see the old file or the new one, never a part
    (and the undo journal's hard link keeps the old one)."""
    temporary = path.with_name(f".{path.name}.writing")
    temporary.write_text(json.dumps(content, indent=2))
    os.replace(temporary, path)
