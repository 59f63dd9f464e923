"""A product run's manifest as a few lines for a person: what was written, or that the output
was up to date, and the scores the run computed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from atmorep_cli.console import out

Manifest = dict[str, Any]


def report_folder(what: str, out_dir: Path, manifest: Manifest) -> None:
    """A folder of products: its files, or that it was up to date."""
    if manifest["skipped"]:
        out.print(f"[green]up to date[/]: {out_dir} already holds this {what} (--force redoes it)")
    else:
        files = ", ".join(manifest["outputs"])
        out.print(f"[green]{what}[/] {manifest['seconds']} s: {files} in {out_dir}")


def report_correction(target: Path, manifest: Manifest) -> None:
    """`correct`: the messages corrected, those passed through, and the RMSE per field."""
    if manifest["skipped"]:
        out.print(
            f"[green]up to date[/]: {target} already holds this correction (--force redoes it)"
        )
    else:
        out.print(
            f"[green]corrected[/] {manifest['corrected_messages']} of {manifest['messages']} "
            f"messages in {manifest['seconds']} s: {target}"
        )
    if manifest["uncorrected_times"]:
        out.print(f"[yellow]passed through (no history)[/]: {manifest['uncorrected_times']}")
    for group, row in manifest.get("score", {}).items():
        if " " not in group:  # one line per field; levels and leads are in the JSON
            out.print(
                f"{group}: RMSE against the truth {row['rmse_raw']:.4g} raw, "
                f"{row['rmse_corrected']:.4g} corrected (ratio {row['ratio']:.3f})"
            )


def report_bias_correction(target: Path, manifest: Manifest) -> None:
    """`bias-correct`: the messages corrected, and the scores against the observations."""
    from atmorep_core.evaluation.bias_score import describe

    if manifest["skipped"]:
        out.print(f"[green]up to date[/]: {target} holds this correction (--force redoes it)")
    else:
        out.print(
            f"[green]bias-corrected[/] {manifest['corrected_messages']} of {manifest['messages']} "
            f"messages in {manifest['seconds']} s: {target} (spread beside it)"
        )
    for line in describe(manifest.get("score", {})):
        out.print(line)
