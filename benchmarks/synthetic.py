"""ERA5-like GRIB files of smooth travelling waves, for benchmarks at ERA5's resolution."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from atmorep_core.grid import LatLonGrid
from atmorep_core.io.grib_write import GribMessage, GribWriter

LEVELS = (96, 105, 114, 123, 137)
START = datetime(2021, 1, 10)


def wave_fields(grid: LatLonGrid, hours: int, seed: int = 0) -> np.ndarray:
    """(time, level, lat, lon) float32: per level a sum of 24 travelling separable waves."""
    rng = np.random.default_rng(seed)
    lat = np.radians(grid.lats)[:, None]  # (lat, 1)
    lon = np.radians(grid.lons)[:, None]  # (lon, 1)
    steps = np.arange(hours)[:, None]  # (time, 1)
    out = np.empty((hours, len(LEVELS), *grid.shape), dtype=np.float32)
    for level in range(len(LEVELS)):
        k = 24
        m, n = rng.integers(1, 30, k), rng.integers(1, 20, k)
        phase = rng.uniform(0, 2 * np.pi, (3, k))
        amplitude = rng.normal(0, 1, k) / np.sqrt(m * n)
        lat_waves = np.cos(n * lat + phase[0]) * amplitude  # (lat, k)
        lon_waves = np.cos(m * lon + phase[1])  # (lon, k)
        time_waves = np.cos(rng.uniform(0.05, 0.3, k) * steps + phase[2])  # (time, k)
        for t in range(hours):
            out[t, level] = 250 + 30 * ((lat_waves * time_waves[t]) @ lon_waves.T)
    return out


def write_era5_like(path: Path, resolution: float, hours: int, seed: int = 0) -> Path:
    """One file of hourly temperature on LEVELS, ERA5's message order (time, then level)."""
    grid = LatLonGrid.global_grid(resolution)
    values = wave_fields(grid, hours, seed)
    with GribWriter(path) as writer:
        for t in range(hours):
            for k, level in enumerate(LEVELS):
                when = START + timedelta(hours=t)
                writer.write(GribMessage("t", "hybrid", level, when, values[t, k], grid))
    return path
