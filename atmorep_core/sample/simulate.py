"""The embedded sample: weather from a real dynamical core, written as ERA5 model-level GRIB.

The `dinosaur` spectral primitive-equation core (JAX, sigma coordinates) runs the Held-Suarez
benchmark: Newtonian cooling towards a zonally symmetric equilibrium temperature plus Rayleigh
friction near the ground, on a flat, dry planet. It starts from the Jablonowski-Williamson
balanced jets with their baroclinic perturbation, plus seeded temperature noise in both
hemispheres, so that baroclinic eddies grow within about a week; after the spin-up it records
every hour. The run is deterministic for a given `seed`.

Output follows the original AtmoRep layout: one GRIB2 file per field and month,
`era5_{field}_y{YYYY}_m{MM}.grib`, with ERA5 keys (class ea, stream oper, type an, step 0 at the
valid time) on the model levels 96, 105, 114, 123 and 137 (typeOfLevel hybrid).

Vertical: the core's sigma layers are interpolated, linearly in log(sigma), to the sigma of those
ERA5 levels (level 137 lies a little below the lowest layer centre: it is extrapolated from the
two lowest layers). Interpolation in sigma is linear, so it is done on spectral coefficients.

IFS-like companion (`ifs_like_hours` > 0): from the reference state at `ifs_like_base` (default:
00 UTC of the last recorded day) a forecast with a known model error runs for that many hours,
written as operational IFS GRIB2 (class od, stream oper, type fc, the base time and hourly steps
0, 1, ...; the same fields, levels and grid) in `ifs_fc_{YYYYMMDDTHH}.grib2`. The error is in
the boundary layer (`IFS_LIKE_ERROR`): four times the Held-Suarez surface friction and four
times its thermal relaxation towards the equilibrium temperature near the ground, so the winds
and temperatures of the lowest levels drift from the reference within hours, the upper ones
barely. The reference covers every step, so a correction can be scored against it.
`ifs_like_runs` > 1 starts more such forecasts, one a day before the other, the last at the
base: pairs of forecast and reference to train a bias correction on, and a day to score it.

Horizontal: the spectral coefficients are summed directly on the target latitudes and longitudes
(spectral synthesis with the associated Legendre functions evaluated at the regular latitudes).
The result is the model's own truncated field at every grid point, with no interpolation error
and no smoothing; winds come from u cos(lat) and v cos(lat), divided by cos(lat).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from atmorep_core.errors import ConfigError
from atmorep_core.grid import LatLonGrid
from atmorep_core.io.grib_write import GribWriter
from atmorep_core.sample.grib import (
    ERA5_LEVELS,
    SAMPLE_FIELDS,
    frame_messages,
    ifs_like_file_name,
    write_months,
)
from atmorep_core.sample.levels import (
    Synthesis,
    make_synthesis,
    sigma_boundaries,
    vertical_weights,
)

Progress = Callable[[str, float], None]

# Full-level sigma (p / ps) of those ERA5 L137 model levels for ps = 1013.25 hPa, from the a/b
# coefficients of the L137 table (the `pv` key of any ERA5 / IFS model-level GRIB), with the
# full-level pressure taken as the mean of the two half levels, as the IFS does.
ERA5_LEVEL_SIGMA = (0.50086565, 0.68423819, 0.83865459, 0.93464005, 0.99881506)

# The IFS-like companion's model error: Held-Suarez constants in units of 1 / day (reference:
# kf 1 / day surface friction, ks 1 / 4 days thermal relaxation at the surface).
IFS_LIKE_ERROR = {"kf": 4.0, "ks": 1.0}
_REFERENCE_KELVIN = 288.0  # isothermal reference of the semi-implicit scheme (stable when warm)


class SampleSettingError(ConfigError):
    """An invalid sample setting; `key` names the SampleSettings field."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key} {reason}")
        self.key = key
        self.reason = reason


@dataclass(frozen=True)
class SampleSettings:
    """What to simulate and record. Defaults take about 3 minutes on 2 CPU cores."""

    start: datetime = datetime(2020, 1, 28)  # first recorded hour (UTC); crosses a month
    days: float = 5.0  # length of the hourly record
    spinup_days: float = 10.0  # simulated before the record: eddies saturate in about 9 days
    resolution_deg: float = 2.0  # spacing of the global output lat-lon grid
    truncation: int = 42  # triangular spectral truncation (T42 ~ 2.8 deg)
    layers: int = 20  # sigma layers of the core
    seed: int = 0  # seeds the initial temperature noise
    time_step_minutes: int = 10
    noise_kelvin: float = 1.0  # amplitude of the initial grid-point temperature noise
    ifs_like_hours: int = 0  # hourly steps of the IFS-like companion forecast; 0: none
    ifs_like_base: datetime | None = None  # its base time; None: 00 UTC of the last record day
    ifs_like_runs: int = 1  # companion forecasts, daily, the last one from ifs_like_base

    def __post_init__(self) -> None:
        self._check(self.start.minute == self.start.second == 0, "start", "must be on the hour")
        self._check(self.days > 0 and _is_whole(self.days * 24), "days", "must be whole hours > 0")
        self._check(self.spinup_days >= 0, "spinup_days", "must be >= 0")
        self._check(_divides(self.resolution_deg, 90.0), "resolution_deg", "must divide 90 evenly")
        self._check(10 <= self.truncation <= 213, "truncation", "must be within 10 .. 213")
        self._check(4 <= self.layers <= 100, "layers", "must be within 4 .. 100")
        self._check(self.seed >= 0, "seed", "must be >= 0")
        self._check(_divides(self.time_step_minutes, 60), "time_step_minutes", "must divide 60")
        self._check(self.noise_kelvin >= 0, "noise_kelvin", "must be >= 0")
        self._check(self.ifs_like_hours >= 0, "ifs_like_hours", "must be >= 0")
        self._check(self.ifs_like_runs >= 1, "ifs_like_runs", "must be >= 1")
        if self.ifs_like_hours:
            self._check_companion()

    def _check_companion(self) -> None:
        """Every step of the IFS-like forecasts needs its reference hour in the record."""
        first, base = self.companion_bases[0], self.companion_base
        last = self.start + timedelta(hours=self.hours - 1)
        end = base + timedelta(hours=self.ifs_like_hours - 1)
        key = "ifs_like_hours" if self.ifs_like_base is None else "ifs_like_base"
        key = "ifs_like_runs" if self.ifs_like_runs > 1 and first < self.start else key
        on_hour = base.minute == base.second == 0
        reason = (
            f"must keep the forecasts from {first:%Y-%m-%dT%H} to {end:%Y-%m-%dT%H} inside the "
            f"record {self.start:%Y-%m-%dT%H} .. {last:%Y-%m-%dT%H}, on whole hours"
        )
        self._check(self.start <= first and end <= last and on_hour, key, reason)

    def _check(self, ok: bool, key: str, reason: str) -> None:
        if not ok:
            raise SampleSettingError(key, f"{reason} (got {getattr(self, key)})")

    @property
    def hours(self) -> int:
        return round(self.days * 24)

    @property
    def spinup_hours(self) -> int:
        return round(self.spinup_days * 24)

    @property
    def companion_bases(self) -> list[datetime]:
        """The base times of all IFS-like forecasts, a day apart, the last `companion_base`."""
        days = range(self.ifs_like_runs - 1, -1, -1)
        return [self.companion_base - timedelta(days=d) for d in days]

    @property
    def companion_base(self) -> datetime:
        """The IFS-like forecast's base time."""
        if self.ifs_like_base is not None:
            return self.ifs_like_base
        last = self.start + timedelta(hours=self.hours - 1)
        return max(self.start, last.replace(hour=0))


def _is_whole(value: float) -> bool:
    return abs(value - round(value)) < 1e-9


def _divides(step: float, span: float) -> bool:
    return step > 0 and _is_whole(span / step)


@dataclass
class _Core:
    """The dynamical core: one-hour advance, the diagnostics of a state, the initial state."""

    advance_hour: Callable[[Any], Any]
    diagnose: Callable[[Any], Any]  # state -> (fields, layers, 2M-1, L) SI spectral coefficients
    initial_state: Any
    grid: Any
    centres: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
    advance_with_error: Callable[[Any], Any] | None = None  # the IFS-like companion's hour


def _build_core(settings: SampleSettings) -> _Core:
    """The core for `settings`, jitted but not yet compiled, and its initial state."""
    _require_core_packages()
    import jax
    from dinosaur import units

    specs = units.SimUnits.from_si()
    coords = _coordinates(settings, specs)
    with_error = None
    if settings.ifs_like_hours:
        with_error = jax.jit(_hourly_step(coords, specs, settings, IFS_LIKE_ERROR))
    return _Core(
        advance_hour=jax.jit(_hourly_step(coords, specs, settings)),
        advance_with_error=with_error,
        diagnose=jax.jit(_diagnostics_fn(coords, specs)),
        initial_state=_initial_state(coords, specs, settings),
        grid=coords.horizontal,
        centres=np.asarray(coords.vertical.centers),
        info={
            "dinosaur": metadata.version("dinosaur"),
            "grid_nodes": list(coords.horizontal.nodal_shape),
        },
    )


def _coordinates(settings: SampleSettings, specs: Any) -> Any:
    from dinosaur import coordinate_systems, sigma_coordinates, spherical_harmonic

    grid = spherical_harmonic.Grid.construct(
        max_wavenumber=settings.truncation,
        gaussian_nodes=math.ceil((3 * settings.truncation + 1) / 4),  # alias-free quadratic terms
        radius=specs.radius,
    )
    vertical = sigma_coordinates.SigmaCoordinates(sigma_boundaries(settings.layers))
    return coordinate_systems.CoordinateSystem(grid, vertical)


def _hourly_step(
    coords: Any, specs: Any, settings: SampleSettings, per_day: dict[str, float] | None = None
) -> Callable[[Any], Any]:
    """Primitive equations + Held-Suarez forcing, semi-implicit steps repeated for one hour;
    `per_day` changes Held-Suarez rate constants (in 1 / day) from their reference values."""
    from dinosaur import held_suarez, primitive_equations, scales, time_integration

    reference = np.full(coords.vertical.layers, _nondimensional_kelvin(specs, _REFERENCE_KELVIN))
    flat = np.zeros(coords.horizontal.modal_shape, np.float32)
    dynamics = primitive_equations.PrimitiveEquationsSigma(reference, flat, coords, specs)
    rates = {key: value / scales.units.day for key, value in (per_day or {}).items()}
    forcing = held_suarez.HeldSuarezForcingSigma(coords, specs, reference, **rates)
    equation = time_integration.compose_equations([dynamics, forcing])
    dt = specs.nondimensionalize(settings.time_step_minutes * scales.units.minute)
    step = time_integration.imex_rk_sil3(equation, dt)
    # Scale-selective damping of the highest wavenumbers keeps weeks-long runs stable.
    damping = time_integration.exponential_step_filter(
        coords.horizontal, dt, tau=0.0087504, order=1.5, cutoff=0.8
    )
    step = time_integration.step_with_filters(step, [damping])
    return time_integration.repeated(step, 60 // settings.time_step_minutes)


def _nondimensional_kelvin(specs: Any, kelvin: float) -> float:
    from dinosaur import scales

    return float(specs.nondimensionalize(kelvin * scales.units.K))


def _require_core_packages() -> None:
    try:
        import dinosaur  # noqa: F401
        import jax  # noqa: F401
    except ImportError as missing:
        raise ConfigError(
            f"the sample needs jax and dinosaur ({missing}): pip install 'atmorep[sample]'"
        ) from missing


def _initial_state(coords: Any, specs: Any, settings: SampleSettings) -> Any:
    """Jablonowski-Williamson jets + their perturbation + seeded noise, T' about 288 K."""
    import jax
    import jax.numpy as jnp
    from dinosaur import primitive_equations_states, xarray_utils

    steady, aux = primitive_equations_states.steady_state_jw(coords, specs)
    state = steady() + primitive_equations_states.baroclinic_perturbation_jw(coords, specs)
    # The JW state is given about its own reference profile; re-express it about ours.
    grid = coords.horizontal
    shift = aux[xarray_utils.REF_TEMP_KEY] - _nondimensional_kelvin(specs, _REFERENCE_KELVIN)
    nodal = np.asarray(grid.to_nodal(state.temperature_variation)) + shift[:, None, None]
    # The noise seeds eddies in both hemispheres (the JW perturbation is in the north only).
    rng = np.random.default_rng(settings.seed)
    noise = _nondimensional_kelvin(specs, settings.noise_kelvin)
    nodal = nodal + noise * rng.standard_normal(nodal.shape)
    state.temperature_variation = grid.to_modal(nodal.astype(np.float32))
    return jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype=jnp.float32), state)


def _diagnostics_fn(coords: Any, specs: Any) -> Callable[[Any], Any]:
    """state -> spectral vo, d, T', u cos(lat), v cos(lat), omega, in SI units."""
    import jax.numpy as jnp
    from dinosaur import scales, spherical_harmonic

    units = scales.units
    per_second = specs.dimensionalize(1.0, 1 / units.s).magnitude
    metres_per_second = specs.dimensionalize(1.0, units.m / units.s).magnitude
    kelvin = specs.dimensionalize(1.0, units.K).magnitude
    pascal_per_second = specs.dimensionalize(1.0, units.Pa / units.s).magnitude
    scale = np.array([per_second, per_second, kelvin, *[metres_per_second] * 2, pascal_per_second])

    def diagnose(state: Any) -> Any:
        cos_u = spherical_harmonic.get_cos_lat_vector(
            state.vorticity, state.divergence, coords.horizontal, clip=False
        )
        omega = _modal_omega(state, cos_u, coords)
        stacked = jnp.stack(
            [state.vorticity, state.divergence, state.temperature_variation, *cos_u, omega]
        )
        return stacked * jnp.asarray(scale, dtype=stacked.dtype)[:, None, None, None]

    return diagnose


def _modal_omega(state: Any, cos_u: tuple[Any, Any], coords: Any) -> Any:
    """omega = dp/dt at layer centres, from the continuity equation in sigma coordinates.

    omega = ps (sigma G - integral from 0 to sigma of (D + G) dsigma), G = u . grad(ln ps);
    midpoint rule, as dinosaur integrates in sigma. Computed on the Gaussian grid (products),
    returned as spectral coefficients like the other fields.
    """
    import jax.numpy as jnp

    grid, vertical = coords.horizontal, coords.vertical
    nodal_u = [grid.to_nodal(c) for c in cos_u]
    grad = [grid.to_nodal(g) for g in grid.cos_lat_grad(state.log_surface_pressure, clip=False)]
    advection = (nodal_u[0] * grad[0] + nodal_u[1] * grad[1]) * grid.sec2_lat
    flux = (grid.to_nodal(state.divergence) + advection) * vertical.layer_thickness[:, None, None]
    above_centre = jnp.cumsum(flux, axis=0) - 0.5 * flux
    surface_pressure = jnp.exp(grid.to_nodal(state.log_surface_pressure))
    sigma = vertical.centers[:, None, None]
    return grid.to_modal(surface_pressure * (sigma * advection - above_centre))


def _to_latlon(modal: np.ndarray, weights: np.ndarray, synthesis: Synthesis) -> np.ndarray:
    """(fields, layers, 2M-1, L) -> (fields, levels, lat, lon) on the output grid, SI units."""
    on_levels = np.einsum("kn,fnml->fkml", weights, modal.astype(np.float64))
    values = synthesis(on_levels)
    values[2] += _REFERENCE_KELVIN  # constant in the vertical, so it commutes with weights
    values[3:5] /= synthesis.cos_lat[:, None]
    return values


def _compile(core: _Core, progress: Progress) -> _Core:
    """The core with both functions compiled ahead of time (tens of seconds at T42)."""
    progress("compiling", 0.0)
    state = core.initial_state
    compiled = replace(
        core,
        advance_hour=core.advance_hour.lower(state).compile(),  # type: ignore[attr-defined]
        diagnose=core.diagnose.lower(state).compile(),  # type: ignore[attr-defined]
    )
    progress("compiling", 1.0)
    return compiled


def _spin_up(core: _Core, hours: int, progress: Progress) -> Any:
    state = core.initial_state
    for hour in range(hours):
        state = core.advance_hour(state)
        if hour % 24 == 23 or hour == hours - 1:
            state.temperature_variation.block_until_ready()  # report work done, not queued
            progress("spin-up", (hour + 1) / hours)
    _check_finite(np.asarray(state.temperature_variation), "the spin-up")
    return state


def _check_finite(values: np.ndarray, when: str) -> None:
    if not np.all(np.isfinite(values)):
        raise ConfigError(
            f"the dynamical core became unstable during {when}: "
            "use a shorter time_step_minutes or a lower truncation"
        )


def _frames(
    core: _Core,
    settings: SampleSettings,
    grid: LatLonGrid,
    progress: Progress,
    branch: dict[datetime, Any],
) -> Iterator[tuple[datetime, np.ndarray]]:
    """(valid time, (fields, levels, lat, lon)) for every recorded hour, computed lazily; the
    states at the companions' base times go into `branch`, by base time."""
    to_latlon = _output(core, grid)
    state = _spin_up(core, settings.spinup_hours, progress)
    for hour in range(settings.hours):
        if hour > 0:
            state = core.advance_hour(state)
        valid_time = settings.start + timedelta(hours=hour)
        if settings.ifs_like_hours and valid_time in settings.companion_bases:
            branch[valid_time] = state
        values = to_latlon(state)
        _check_finite(values, "the record")
        progress("record", (hour + 1) / settings.hours)
        yield valid_time, values


def _output(core: _Core, grid: LatLonGrid) -> Callable[[Any], np.ndarray]:
    """state -> (fields, levels, lat, lon) on the output grid."""
    weights = vertical_weights(core.centres, ERA5_LEVEL_SIGMA)
    synthesis = make_synthesis(
        core.grid.longitude_wavenumbers, core.grid.total_wavenumbers, grid.lats, grid.lons
    )
    return lambda state: _to_latlon(np.asarray(core.diagnose(state)), weights, synthesis)


def _write_ifs_like(
    out_dir: Path, core: _Core, state: Any, base: datetime, settings: SampleSettings,
    grid: LatLonGrid, progress: Progress,
) -> Path:  # fmt: skip
    """The IFS-like forecast from `state` at `base`: class od, type fc, hourly steps from 0."""
    assert core.advance_with_error is not None
    to_latlon = _output(core, grid)
    path = out_dir / ifs_like_file_name(base)
    with GribWriter(path) as writer:
        for step in range(settings.ifs_like_hours):
            if step > 0:
                state = core.advance_with_error(state)
            values = to_latlon(state)
            _check_finite(values, "the IFS-like forecast")
            for message in frame_messages(values, base, grid, step=step, ifs_like=True):
                writer.write(message)
            progress(f"ifs-like {base:%dT%H}", (step + 1) / settings.ifs_like_hours)
    return path


def _write_provenance(path: Path, settings: SampleSettings, core: _Core, files: list[Path]) -> None:
    base = settings.companion_base.isoformat()
    record = {
        "core": "dinosaur primitive equations (sigma), Held-Suarez forcing, flat dry planet",
        "initial_state": "Jablonowski-Williamson jets + baroclinic perturbation + seeded noise",
        "settings": {
            **asdict(settings),
            "start": settings.start.isoformat(),
            "ifs_like_base": base if settings.ifs_like_hours else None,
            "ifs_like_bases": [b.isoformat() for b in settings.companion_bases]
            if settings.ifs_like_hours
            else [],
        },
        "ifs_like_error_per_day": IFS_LIKE_ERROR if settings.ifs_like_hours else None,
        "sigma_boundaries": sigma_boundaries(settings.layers).tolist(),
        "sigma_centres": core.centres.tolist(),
        "era5_levels": list(ERA5_LEVELS),
        "era5_level_sigma": list(ERA5_LEVEL_SIGMA),
        "fields": list(SAMPLE_FIELDS),
        "files": [file.name for file in files],
        **core.info,
    }
    temporary = Path(f"{path}.tmp")
    temporary.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(temporary, path)


def generate_sample(
    out_dir: Path, settings: SampleSettings, progress: Progress | None = None
) -> list[Path]:
    """Run the core, write the GRIB files and `sample.json`; return their paths (json last)."""
    report: Progress = progress or (lambda stage, fraction: None)
    grid = LatLonGrid.global_grid(settings.resolution_deg)
    core = _compile(_build_core(settings), report)
    out_dir.mkdir(parents=True, exist_ok=True)
    branch: dict[datetime, Any] = {}
    files = write_months(out_dir, _frames(core, settings, grid, report, branch), grid)
    for base, state in branch.items():
        files.append(_write_ifs_like(out_dir, core, state, base, settings, grid, report))
    provenance = out_dir / "sample.json"
    _write_provenance(provenance, settings, core, files)
    return [*files, provenance]
