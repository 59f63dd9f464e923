"""Product -> PNG maps: one per field and lead time, the ensemble mean and (for ensembles) spread.

Figures are drawn with matplotlib's object API on an Agg canvas, so plotting neither needs a
display nor changes the backend of a session that imports this module. Coastlines are drawn when
cartopy is installed and its Natural Earth 110m coastline file is already on disk; plotting never
downloads anything, and without them the map is a plain latitude-longitude plot. A field on a
rotated-pole grid is drawn cell by cell at its 2-D geographic latitudes and longitudes.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import QuadMesh
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from atmorep_core.grid import LatLonGrid
from atmorep_core.io.product import Product, ProductField, ProductGrid, atomic_output
from atmorep_core.rotated_grid import RotatedGrid

PANEL_INCHES = (7.0, 4.5)  # width, height of one panel
DPI = 100
# Levels counted from the top of the atmosphere: the largest number is the one nearest the ground.
_TOP_DOWN_LEVEL_TYPES = ("hybrid", "isobaricInhPa")


def plot_maps(
    product: Product,
    out_dir: Path | str,
    *,
    fields: Sequence[str] | None = None,
    steps: Sequence[int] | None = None,
    level: int | None = None,
) -> list[Path]:
    """Write one PNG per selected field and lead time into `out_dir`; returns their paths.

    `fields` are field names and `steps` lead hours of the product (default: all). `level` picks
    the level of multi-level fields (default: the one nearest the ground); single-level fields
    are plotted at their only level. An unknown field, step or level raises ValueError before
    anything is drawn. Each PNG is written to a temporary name, then renamed.
    """
    chosen = [product.field_named(name) for name in fields] if fields else list(product.fields)
    all_steps = range(len(product.steps_hours))
    step_indices = [_step_index(product, step) for step in steps] if steps else all_steps
    level_indices = [_level_index(product_field, level) for product_field in chosen]
    out = Path(out_dir)
    written = []
    for product_field, level_index in zip(chosen, level_indices, strict=True):
        mean, spread = product_field.mean()[:, level_index], product_field.spread()[:, level_index]
        for step_index in step_indices:
            figure = _map_figure(
                product,
                product_field,
                level_index,
                step_index,
                mean[step_index],
                spread[step_index],
            )
            path = out / _file_name(product_field, level_index, product.steps_hours[step_index])
            with atomic_output(path) as temporary:
                figure.savefig(temporary, format="png")
            written.append(path)
    return written


def plot_longitudes(grid: LatLonGrid) -> np.ndarray:
    """The grid's longitudes shifted by whole turns so that the map's centre is in -180..180.

    They stay increasing, so a global grid (0..357) spans one full turn and a regional grid
    across Greenwich (stored as 350..362 or -10..2) is drawn as -10..2, without a gap or jump.
    """
    lons = grid.lons
    centre = (lons[0] + lons[-1]) / 2.0
    return lons - 360.0 * np.floor((centre + 180.0) / 360.0)


def _step_index(product: Product, step: int) -> int:
    if step not in product.steps_hours:
        raise ValueError(f"no lead time {step} h in the product (has {product.steps_hours})")
    return product.steps_hours.index(step)


def _level_index(product_field: ProductField, level: int | None) -> int:
    levels = product_field.levels
    if len(levels) == 1:
        return 0
    if level is None:
        nearest_ground = (
            max(levels) if product_field.level_type in _TOP_DOWN_LEVEL_TYPES else levels[0]
        )
        return levels.index(nearest_ground)
    if level not in levels:
        raise ValueError(f"{product_field.name} has no level {level} (has {levels})")
    return levels.index(level)


def _file_name(product_field: ProductField, level_index: int, step: int) -> str:
    level = product_field.levels[level_index]
    return f"{product_field.name}_{product_field.level_type}{level}_{step:03d}h.png"


def _map_figure(
    product: Product,
    product_field: ProductField,
    level_index: int,
    step_index: int,
    mean: np.ndarray,
    spread: np.ndarray,
) -> Figure:
    members = product.members
    panels = [(f"ensemble mean of {members}" if members > 1 else "deterministic", mean, False)]
    if members > 1:
        panels.append(("ensemble spread (standard deviation)", spread, True))
    width, height = PANEL_INCHES
    figure = Figure(figsize=(width * len(panels), height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    units = product_field.catalogue.units
    all_axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for axes, (label, values, is_spread) in zip(all_axes, panels, strict=True):
        mesh = _draw_map(axes, product_field.grid, values, is_spread)
        figure.colorbar(mesh, ax=axes, label=units, shrink=0.9)
        axes.set_title(label)
    figure.suptitle(_title(product, product_field, level_index, step_index))
    return figure


def rotated_plot_longitudes(grid: RotatedGrid) -> np.ndarray:
    """The grid's 2-D longitudes made continuous about the domain's centre, which is in -180..180.

    A domain across the date line then has no jump in the middle of its cells.
    """
    lons = grid.lons
    centre = float(lons[grid.nj // 2, grid.ni // 2])
    return centre + (lons - centre + 180.0) % 360.0 - 180.0


def _draw_map(axes: Axes, grid: ProductGrid, values: np.ndarray, is_spread: bool) -> QuadMesh:
    cmap, vmin, vmax = _colour_scale(values, is_spread)
    if isinstance(grid, RotatedGrid):
        lons, lats = rotated_plot_longitudes(grid), grid.lats
        # Half a cell beyond the outer centres, in degrees of latitude at the domain's middle.
        half_lat = abs(grid.rlat_step) / 2.0
        half_lon = half_lat / max(np.cos(np.radians(float(np.mean(lats)))), 0.2)
    else:
        lons, lats = plot_longitudes(grid), grid.lats
        half_lon, half_lat = abs(grid.lon_step) / 2.0, abs(grid.lat_step) / 2.0
    mesh = axes.pcolormesh(lons, lats, values, shading="nearest", cmap=cmap, vmin=vmin, vmax=vmax)
    for line in _coastlines():
        for turn in (-360.0, 0.0, 360.0):  # copies either side, clipped by the limits below
            axes.plot(line[:, 0] + turn, line[:, 1], color="black", linewidth=0.6)
    axes.set_xlim(lons.min() - half_lon, lons.max() + half_lon)
    axes.set_ylim(lats.min() - half_lat, lats.max() + half_lat)
    # Degrees of longitude shrink with latitude: keep distances roughly true at the centre.
    axes.set_aspect(1.0 / max(np.cos(np.radians(float(np.mean(lats)))), 0.2))
    axes.xaxis.set_major_formatter(FuncFormatter(_lon_label))
    axes.yaxis.set_major_formatter(FuncFormatter(_lat_label))
    return mesh


def _colour_scale(values: np.ndarray, is_spread: bool) -> tuple[str, float | None, float | None]:
    """Colour map and limits: spread from 0; signed fields (winds, vorticity) centred on 0."""
    if is_spread:  # a zero spread (all members equal) still gets a readable 0..1 scale
        return "magma", 0.0, float(values.max()) or 1.0
    if values.min() < 0.0 < values.max():
        limit = float(np.abs(values).max())
        return "RdBu_r", -limit, limit
    return "viridis", None, None


def _title(product: Product, product_field: ProductField, level_index: int, step_index: int) -> str:
    catalogue = product_field.catalogue
    level = _level_text(product_field.level_type, product_field.levels[level_index])
    step, valid = product.steps_hours[step_index], product.valid_times[step_index]
    return (
        f"{catalogue.description} ({product_field.name}) [{catalogue.units}], {level}\n"
        f"{product.kind} from {product.init:%Y-%m-%d %H:%M} UTC, lead +{step} h, "
        f"valid {valid:%Y-%m-%d %H:%M} UTC"
    )


def _level_text(level_type: str, level: int) -> str:
    texts = {
        "hybrid": f"model level {level}",
        "isobaricInhPa": f"{level} hPa",
        "heightAboveGround": f"{level} m above ground",
        "meanSea": "mean sea level",
        "surface": "surface",
    }
    return texts.get(level_type, f"{level_type} {level}")


def _lon_label(lon: float, _position: int | None = None) -> str:
    wrapped = (lon + 180.0) % 360.0 - 180.0
    hemisphere = "E" if wrapped > 0 else "W" if wrapped < 0 else ""
    return f"{abs(wrapped):g}°{hemisphere}"


def _lat_label(lat: float, _position: int | None = None) -> str:
    hemisphere = "N" if lat > 0 else "S" if lat < 0 else ""
    return f"{abs(lat):g}°{hemisphere}"


@cache
def _coastlines() -> tuple[np.ndarray, ...]:
    """Natural Earth 110m coastlines as (n, 2) lon/lat arrays; none without cartopy's file."""
    try:
        path = _coastline_file()
        if path is None:
            return ()
        from cartopy.io.shapereader import Reader

        geometries = Reader(str(path)).geometries()
        return tuple(
            np.asarray(line.coords)
            for geometry in geometries
            for line in getattr(geometry, "geoms", [geometry])
        )
    except Exception:  # coastlines are decoration: a broken cartopy must not stop the maps
        return ()


def _coastline_file() -> Path | None:
    """The coastline file where cartopy's own downloader would look, if it is already there.

    Asking cartopy's `natural_earth()` instead would download a missing file, which can hang a
    machine without internet access.
    """
    try:
        from cartopy import config
        from cartopy.io import Downloader
    except ImportError:
        return None
    spec = {"config": config, "resolution": "110m", "category": "physical", "name": "coastline"}
    downloader = Downloader.from_config(
        ("shapefiles", "natural_earth", "110m", "physical", "coastline")
    )
    candidates = (downloader.pre_downloaded_path(spec), downloader.target_path(spec))
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)
