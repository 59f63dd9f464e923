"""The input files the cases name: real samples (SHARED) and bad GRIB files cut from, or changed
in, them (MADE; the `made` fixture writes them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import eccodes
import numpy as np

from atmorep_core.io.grib_messages import transform
from tests.conftest import ENSEMBLE, T2M

SHARED = {
    "ensemble_grib": ENSEMBLE,  # global 3 deg, t and z at 500 / 850 hPa, 10 members, 2017-01-01/02
    "corrupt_grib": "bad/era5-levels-corrupted.grib",
    "ml137": "ifs/ifs-fc-ml137-t-u-v-q-20181114T12-step24.grib2",  # IFS, Europe, November 2018
    "n80": "ifs/ifs-fc-t-ml-n80-20180405T12-step12.grib",  # IFS, global, April 2018
}
INIT = "2017-01-02T00"  # the global store's last input time that a 12 h lead can follow
STEM = "forecast_20170102T0000"

Pick = Callable[[int, int], bool]
"""(eccodes handle, message index) -> whether the message is chosen."""


def derived_grib(source: Path, target: Path, keep: Pick, implausible: Pick, value: float) -> Path:
    """A copy of the messages `keep` takes, every value of those `implausible` picks set to
    `value` (all other keys as they were)."""

    def change(handle: int, index: int) -> bytes | None:
        if not keep(handle, index):
            return None
        if implausible(handle, index):
            size = eccodes.codes_get_size(handle, "values")
            eccodes.codes_set_values(handle, np.full(size, value))
        return bytes(eccodes.codes_get_message(handle))

    transform(source, target, change)
    return target


def _every(handle: int, index: int) -> bool:
    return True


def _none(handle: int, index: int) -> bool:
    return False


def _index(test: Callable[[int], bool]) -> Pick:
    return lambda handle, index: test(index)


def _keys(**wanted: object) -> Pick:
    return lambda handle, index: all(eccodes.codes_get(handle, k) == v for k, v in wanted.items())


@dataclass(frozen=True)
class Derived:
    """A GRIB file cut from, or changed in, a real sample (see `derived_grib`)."""

    source: str
    keep: Pick = _every
    implausible: Pick = _none
    value: float = 0.0


FIRST_HALF = _index(lambda index: index < 300)  # t2m of 1 March 00 UTC .. 13 March 11 UTC
SECOND_HALF = _index(lambda index: index >= 300)
DAY_21 = _keys(dataDate=20190321)
MADE = {
    "t2m_first": Derived(T2M, FIRST_HALF),
    "t2m_second": Derived(T2M, SECOND_HALF),
    "t2m_hot": Derived(T2M, SECOND_HALF, _index(lambda index: index == 310), 1e30),
    "t2m_cold": Derived(T2M, SECOND_HALF, _index(lambda index: index == 320), -500.0),
    "t2m_day": Derived(T2M, DAY_21),
    "t2m_day_hot": Derived(T2M, DAY_21, _keys(dataTime=1200), 1e30),
    "ens_day1": Derived(ENSEMBLE, _keys(dataDate=20170101)),
    "ens_day2": Derived(ENSEMBLE, _keys(dataDate=20170102)),
    "ens_hot": Derived(
        ENSEMBLE, implausible=_keys(shortName="t", level=850, dataDate=20170102), value=1e30
    ),
    # Above temperature's 350 K bound but finite, so a forecast allowed to take it runs.
    "ens_warm": Derived(
        ENSEMBLE, implausible=_keys(shortName="t", level=850, dataDate=20170102), value=360.0
    ),
    "n80_hot": Derived(SHARED["n80"], implausible=_index(lambda index: index == 2), value=1e30),
}
