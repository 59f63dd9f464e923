"""Physically possible values per field, so that a corrupt or mislabelled message is refused
before it reaches the store's statistics (one message of 1e30 K would make a global mean of
1e27 K, which every later normalisation uses) or a model's input.

The ranges are in the catalogue's units (`fields.py`) and wide on purpose: each lies beyond the
observed or reanalysed extremes on every level from the surface to the top of ECMWF's models
(0.01 hPa, about 80 km), with a margin, so that real data never trips them and only values no
atmosphere holds (wrong units, garbage, overflow) do. The source of every number is given beside
it. `prepare --allow-implausible` (`IngestOptions.allow_implausible`) accepts such values for
experiments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from atmorep_core.errors import InputDataError
from atmorep_core.fields import Field


@dataclass(frozen=True)
class Range:
    low: float
    high: float
    basis: str  # where the numbers come from

    def describe(self, units: str) -> str:
        return f"{self.low:g} .. {self.high:g} {units}"


_ROTATION = "well beyond the strongest resolved rotation (tropical cyclone cores, ~1e-2 s-1)"
_WIND = (
    "jet streams reach ~110 m/s, the polar night jets near the models' top ~150-200 m/s "
    "(an operational IFS forecast of November 2018 has 137 m/s at model level 7)"
)

RANGES: dict[str, Range] = {
    "vorticity": Range(-0.1, 0.1, _ROTATION),
    "divergence": Range(-0.1, 0.1, _ROTATION),
    "velocity_u": Range(-300.0, 300.0, _WIND),
    "velocity_v": Range(-300.0, 300.0, _WIND),
    "velocity_z": Range(
        -100.0, 100.0, "omega; convective updrafts of 20 m/s at 500 hPa are about -100 Pa/s"
    ),
    "temperature": Range(
        120.0,
        350.0,
        "coldest air: the polar summer mesopause, ~130 K; hottest: 330 K near the ground "
        "(Death Valley, 56.7 C)",
    ),
    "specific_humidity": Range(
        -0.001,
        0.06,
        "saturation at the highest dew points (35 C) is ~0.036 kg/kg; models carry small "
        "negative values from advection",
    ),
    "total_precip": Range(
        0.0, 10.0, "record accumulations: 1.8 m in 24 h (Reunion), 9.3 m in a month (Cherrapunji)"
    ),
    "t2m": Range(160.0, 340.0, "record 2 m temperatures: 184 K (Vostok) and 330 K (Death Valley)"),
    "geopotential": Range(
        -20_000.0,
        1_000_000.0,
        "heights from -2 km (1000 hPa in the deepest lows, the Dead Sea) to 100 km "
        "(above the models' top at ~80 km)",
    ),
    "relative_humidity": Range(
        -10.0,
        200.0,
        "up to ~150 % over ice below -23 C; IFS pressure-level output has a few % below 0",
    ),
    "lnsp": Range(9.9, 11.65, "the logarithm of the surface pressure range 20000 .. 115000 Pa"),
    "surface_pressure": Range(
        20_000.0, 115_000.0, "Everest's summit ~33000 Pa; the highest sea-level record 108480 Pa"
    ),
    "msl": Range(
        80_000.0,
        112_000.0,
        "records: 870 hPa (Typhoon Tip) and 1084.8 hPa (Agata), with room for reduction to sea "
        "level over high ground",
    ),
}


def check(values: np.ndarray, field: Field, where: str, scale: float = 1.0) -> None:
    """InputDataError naming `where` (file, message, level, time), the value and the range when
    a value of `field` (times `scale`, the factor into the catalogue unit) lies outside its
    plausible range. NaN and infinities are left to the callers, who name them as such."""
    if not np.isfinite(values).any():
        return
    limits = RANGES[field.name]
    # Below zero, non-negative fields are conform's: packing noise is clipped, the rest refused.
    low = -np.inf if field.non_negative else limits.low
    for extreme in (float(np.nanmin(values)) * scale, float(np.nanmax(values)) * scale):
        if np.isfinite(extreme) and not low <= extreme <= limits.high:
            raise InputDataError(
                f"{where}: {field.name} {extreme:.6g} {field.units} is outside the plausible "
                f"range {limits.describe(field.units)} ({limits.basis}); "
                "--allow-implausible accepts it"
            )
