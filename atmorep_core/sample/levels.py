"""From the embedded sample's dynamical core to ERA5's layout: sigma layers, the interpolation to
ERA5 model levels (linear in log sigma) and the spectral synthesis on lat-lon points.

See `simulate.py` for why each is done this way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_POLE_NUDGE_DEG = 0.01  # pole rows are evaluated this close to the pole, where winds have a limit


def sigma_boundaries(layers: int) -> np.ndarray:
    """Layer boundaries, dense near the ground: sigma = 1 - (1 - x)**2 for x uniform in 0..1.

    With 20 layers the lowest centre is at sigma 0.99875, so ERA5 level 137 (0.99882) needs
    almost no extrapolation, and the boundary layer of the Held-Suarez friction is resolved.
    """
    x = np.linspace(0.0, 1.0, layers + 1)
    return 1.0 - (1.0 - x) ** 2


def vertical_weights(centres: np.ndarray, targets: tuple[float, ...]) -> np.ndarray:
    """Weights (targets, layers), linear in log(sigma) between the two nearest layer centres."""
    log_c, log_t = np.log(centres), np.log(np.asarray(targets))
    # Bracketing pair, clipped to the end pairs so that targets outside extrapolate linearly.
    upper = np.clip(np.searchsorted(log_c, log_t), 1, len(centres) - 1)
    lower = upper - 1
    frac = (log_t - log_c[lower]) / (log_c[upper] - log_c[lower])
    weights = np.zeros((len(targets), len(centres)))
    rows = np.arange(len(targets))
    weights[rows, lower] = 1.0 - frac
    weights[rows, upper] = frac
    return weights


@dataclass(frozen=True)
class Synthesis:
    """Spectral coefficients (dinosaur's real basis, (..., 2M-1, L)) -> lat-lon (..., lat, lon)."""

    legendre: np.ndarray  # (2M-1, nlat, L)
    fourier: np.ndarray  # (nlon, 2M-1)
    cos_lat: np.ndarray  # (nlat,) at the latitudes evaluated

    def __call__(self, modal: np.ndarray) -> np.ndarray:
        by_lat = np.einsum("mjl,...ml->...mj", self.legendre, modal)
        return np.einsum("im,...mj->...ji", self.fourier, by_lat)


def make_synthesis(
    longitude_wavenumbers: int, total_wavenumbers: int, lat_deg: np.ndarray, lon_deg: np.ndarray
) -> Synthesis:
    """The real spherical-harmonic basis of dinosaur's RealSphericalHarmonics at given points.

    Rows at the poles are moved `_POLE_NUDGE_DEG` towards the equator: a wind component has a
    direction-dependent limit there, and a scalar changes by far less than the packing error.
    """
    from dinosaur import associated_legendre

    limit = 90.0 - _POLE_NUDGE_DEG
    lat = np.radians(np.clip(lat_deg, -limit, limit))
    legendre = associated_legendre.evaluate(
        n_m=longitude_wavenumbers, n_l=total_wavenumbers, x=np.sin(lat)
    )
    # m > 0 pairs with both cos and sin; m = 0 only with the constant: rows 0, 1, 1, 2, 2, ...
    legendre = np.repeat(legendre, 2, axis=0)[1:]
    lon = np.radians(lon_deg)[:, None]
    m = np.arange(1, longitude_wavenumbers)[None, :]
    fourier = np.empty((len(lon_deg), 2 * longitude_wavenumbers - 1))
    fourier[:, 0] = 1.0 / math.sqrt(2.0 * math.pi)
    fourier[:, 1::2] = np.cos(m * lon) / math.sqrt(math.pi)
    fourier[:, 2::2] = np.sin(m * lon) / math.sqrt(math.pi)
    return Synthesis(legendre=legendre, fourier=fourier, cos_lat=np.cos(lat))
