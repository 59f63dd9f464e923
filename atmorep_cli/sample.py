"""`atmorep sample`: simulate the embedded sample atmosphere and write it as ERA5-style GRIB."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from atmorep_cli.console import out
from atmorep_cli.options import TIME_FORMS, parse_time
from atmorep_cli.progress import stage_bars
from atmorep_core.errors import ConfigError
from atmorep_core.sample.simulate import SampleSettingError, SampleSettings, generate_sample

DEFAULT = SampleSettings()

# SampleSettings fields set by an option of another name, so that errors name what the user
# typed (the others: --days for days, --spinup-days for spinup_days, ...).
_OPTIONS = {"resolution_deg": "--resolution", "ifs_like_hours": "--ifs-like"}


def command(
    out_dir: Path = typer.Option(
        ..., "--out", help="Directory for the GRIB files.", resolve_path=True
    ),
    start: str = typer.Option(
        DEFAULT.start.strftime("%Y-%m-%dT%H"), help=f"First recorded hour (UTC), {TIME_FORMS}."
    ),
    days: float = typer.Option(DEFAULT.days, help="Length of the hourly record in days."),
    spinup_days: float = typer.Option(DEFAULT.spinup_days, help="Days simulated first."),
    resolution: float = typer.Option(DEFAULT.resolution_deg, help="Output grid spacing (deg)."),
    truncation: int = typer.Option(DEFAULT.truncation, help="Spectral truncation (T42: 42)."),
    layers: int = typer.Option(DEFAULT.layers, help="Sigma layers of the core."),
    seed: int = typer.Option(
        DEFAULT.seed, help="Seed of the initial noise: same seed, same sample."
    ),
    ifs_like: int = typer.Option(
        0, help="Hours of an IFS-like forecast with a known model error (GRIB2, class od); 0: none."
    ),
    ifs_like_base: str | None = typer.Option(
        None, help="Its base time (UTC); default: 00 UTC of the last recorded day."
    ),
    ifs_like_runs: int = typer.Option(
        1, help="IFS-like forecasts, one a day, the last from the base (bias-correction pairs)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary to stdout."),
) -> None:
    """Simulate weather with a dynamical core (Held-Suarez) and write it as ERA5 GRIB."""
    try:
        settings = SampleSettings(
            start=parse_time(start, "--start"),
            days=days,
            spinup_days=spinup_days,
            resolution_deg=resolution,
            truncation=truncation,
            layers=layers,
            seed=seed,
            ifs_like_hours=ifs_like,
            ifs_like_runs=ifs_like_runs,
            ifs_like_base=None
            if ifs_like_base is None
            else parse_time(ifs_like_base, "--ifs-like-base"),
        )
    except SampleSettingError as bad:
        raise ConfigError(f"{_option(bad.key)} {bad.reason}") from bad
    with stage_bars() as show:
        files = generate_sample(out_dir, settings, show)
    _report(files, as_json)


def _option(key: str) -> str:
    return _OPTIONS.get(key, "--" + key.replace("_", "-"))


def _report(files: list[Path], as_json: bool) -> None:
    sizes = {str(path): path.stat().st_size for path in files}
    if as_json:
        out.print_json(json.dumps({"files": sizes, "total_bytes": sum(sizes.values())}))
        return
    for path, size in sizes.items():
        out.print(f"{path}  [dim]{size / 1e6:.1f} MB[/]", highlight=False)
    out.print(f"[green]wrote {len(files)} files[/], {sum(sizes.values()) / 1e6:.1f} MB")
