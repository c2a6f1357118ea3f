"""`lowlight eval`: score the model (or a classical reference) on paired data."""

from __future__ import annotations

from pathlib import Path

import typer

from lowlight_cli.cli.app import LowlightCommand, app, handle_errors
from lowlight_cli.cli.options import build_pipeline, settings_options
from lowlight_cli.settings import EnhanceSettings


@app.command("eval", cls=LowlightCommand)
@handle_errors
@settings_options()
def evaluate(
    data: Path = typer.Option(
        ..., "--data", help="Paired folder: SICE layout (pairs.csv + val_scenes.txt) or low/ + high/."
    ),
    split: str = typer.Option("val", help="For SICE layout: val, train or all."),
    method: str = typer.Option(
        "model", help="model, or a classical reference: gamma (auto-gamma), clahe (CLAHE on L)."
    ),
    limit: int = typer.Option(0, help="Evaluate only the first N pairs (0 = all)."),
    per_image: bool = typer.Option(False, "--per-image", help="Print a row per image."),
    settings: EnhanceSettings = None,  # type: ignore[assignment]  # always given by @settings_options
) -> None:
    """PSNR / SSIM (and GT-mean PSNR, labelled) on paired data, with time per image."""
    from lowlight_cli.errors import InputError

    if not data.is_dir():  # before the imports below load torch
        raise InputError(f"--data {data}: no such folder")
    from lowlight_cli.evaluation.paired import evaluate_pairs

    pipeline = build_pipeline(settings) if method == "model" else None
    summary = evaluate_pairs(
        data, split, method, pipeline, limit=limit, on_row=(lambda row: typer.echo(row.format())) if per_image else None
    )
    typer.echo(summary.format())
