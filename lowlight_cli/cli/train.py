"""`lowlight train`: parse the options, `training.setup.prepare_run`, then train under a progress bar."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from lowlight_cli.cli.app import STATE, LowlightCommand, app, console, handle_errors
from lowlight_cli.cli.options import Device, Prior, SamModel

# Short options, declared here so that the signature below stays readable.
BATCH_SIZE = typer.Option(16, help="Crops per step.")
CROP = typer.Option(128, help="Crop side in pixels (a multiple of 8).")
LR = typer.Option(2e-4, help="Peak learning rate (AdamW, cosine decay).")
BASE_CHANNELS = typer.Option(24, help="U-Net width at full resolution.")
SEED = typer.Option(0, help="Random seed.")
TONE_PARTS = typer.Option(
    "all",
    "--tone-parts",
    metavar="all|look",
    help="What the tone phase trains: the whole branch, or only its look head (black point, "
    "local exposure) on --init's finished branch.",
)
LOOK = typer.Option(
    True,
    "--look/--no-look",
    help="The tone branch also judges each photo's black point and local exposure (needs --tone).",
)
SAVE_EVERY = typer.Option(200, help="Write checkpoint + state every N steps.")
THREADS = typer.Option(0, help="CPU threads for torch (0 = torch's default).")
NATIVE_SHARE = typer.Option(
    0.0,
    help="Share of crops cut at the photo's own pixels instead of a random downscale, "
    "so the denoiser learns the full-size noise of small photos, which are "
    "sampled at their own size.",
)


@app.command(cls=LowlightCommand)
@handle_errors
def train(
    data: str = typer.Option(
        ...,
        help="Comma-separated folders: SICE layout (pairs.csv), low/+high/ pairs, "
        "or plain photos for synthetic darkening.",
    ),
    out: Path = typer.Option(
        ..., help="Checkpoint to write (.safetensors); <out>.state.safetensors holds the resumable state."
    ),
    steps: int = typer.Option(8000, help="Denoiser optimiser steps (a resumed run continues to this count)."),
    tone_steps: int = typer.Option(
        2500, help="Steps of the global tone branch on whole frames, before the denoiser's steps (0 with --no-tone)."
    ),
    tone: bool = typer.Option(
        True,
        "--tone/--no-tone",
        help="Give the model a global tone branch (exposure, white "
        "balance, tone curve from a thumbnail of the whole "
        "photo); --no-tone keeps the first release's auto-gamma base.",
    ),
    ssim_weight: float = typer.Option(0.2, help="Weight of the structure (1 - SSIM) term on the predicted image."),
    colour_weight: float = typer.Option(0.1, help="Weight of the colour (1 - cosine) term on the predicted image."),
    teacher_gains: bool = typer.Option(
        True,
        "--teacher-gains/--no-teacher-gains",
        help="Develop training photos at "
        "their target's exposure and white balance and learn those gains apart, so "
        "the curve learns contrast instead of hedging an uncertain exposure.",
    ),
    native_share: float = NATIVE_SHARE,
    tone_parts: str = TONE_PARTS,
    look: bool = LOOK,
    stop_at: int | None = typer.Option(
        None,
        "--stop-at",
        help="End this run at this step (resumable later); the learning-rate schedule still spans --steps.",
    ),
    batch_size: int = BATCH_SIZE,
    crop: int = CROP,
    lr: float = LR,
    # Prior, SamModel and Device are Enums made at run time from the settings' choices: not types to mypy.
    prior: Prior = typer.Option(  # type: ignore[valid-type]
        Prior.fallback,  # type: ignore[attr-defined]
        help="Region prior for training: fallback (built-in), sam, none, or "
        "auto, which trains on the built-in prior like fallback (it "
        "never downloads SAM; choose sam for SAM priors).",
    ),
    sam_model: SamModel = typer.Option(SamModel.vit_b, help="SAM size when --prior sam."),  # type: ignore[valid-type,attr-defined]
    sam_checkpoint: Path | None = typer.Option(None, help="Local SAM checkpoint (.safetensors)."),
    semantic_weight: float = typer.Option(0.5, help="Weight of the semantic-context regularisation loss."),
    final_step_share: float = typer.Option(
        0.5, help="Share of diffusion samples at the last timestep, where few-step sampling queries the model."
    ),
    refine_share: float = typer.Option(
        0.0,
        help="Share of diffusion samples at the 2-step sampler's second "
        "timestep, noised around the model's own first estimate, so that "
        "a second step corrects the first (costs one more forward pass "
        "for those samples).",
    ),
    mean_start: bool = typer.Option(
        True,
        "--mean-start/--no-mean-start",
        help="Query the last timestep with zeros (the noise's mean) instead of a noise draw, in training and sampling.",
    ),
    prior_map_scale: int = typer.Option(
        8,
        help="Average the structural prior map over N×N blocks before the "
        "denoiser's first layer (1 = full resolution).",
    ),
    no_diffusion: bool = typer.Option(
        False,
        "--no-diffusion",
        help="Train the plain U-Net regression baseline instead (with --prior none: no prior either).",
    ),
    base_channels: int = BASE_CHANNELS,
    seed: int = SEED,
    init: Path | None = typer.Option(
        None,
        help="Fine-tune: start from this checkpoint's weights ('default' = the "
        "shipped model) with a fresh optimiser and schedule. Ignored when "
        "--out already has a state to resume.",
    ),
    save_every: int = SAVE_EVERY,
    threads: int = THREADS,
    workers: int | None = typer.Option(
        None,
        help="Processes that load the data and make batches (0 = one "
        "background thread; default: up to 8 on CUDA, else 0).",
    ),
    device: Device = typer.Option(Device.auto, help="Compute device."),  # type: ignore[valid-type,attr-defined]
) -> None:
    """Train a denoiser on paired and/or synthetic data (resumes automatically).

    The defaults are the shipped model's recipe (weights/README.md): about 19 minutes on an H100 shared by four runs.
    On a CPU expect seconds per step; --batch-size 8 --crop 96 costs a quarter as much.
    """
    options = {name: value.value if isinstance(value, Enum) else value for name, value in locals().items()}
    from lowlight_cli.training.setup import TrainRequest, prepare_run

    request = TrainRequest.from_options(**{**options, "data": [Path(p) for p in data.split(",") if p]})
    out_console = console()
    options, training_data = prepare_run(request, log=out_console.print)
    run_with_progress(options, training_data, out_console)
    out_console.print(f"wrote {out}")


def run_with_progress(options, training_data, out_console) -> None:
    """`trainer.train` under a progress bar (steps, loss, time left); notes and --verbose rates above it."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from lowlight_cli.training.trainer import train as run_training

    with Progress(
        TextColumn("training"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=out_console,
        refresh_per_second=1,
    ) as progress:
        total = options.tone_steps + options.steps
        task = progress.add_task("train", total=min(total, options.stop_at or total), loss=float("nan"))

        def on_step(step: int, loss: float, seconds_per_step: float) -> None:
            progress.update(task, completed=step, loss=loss)
            if STATE["verbose"] and step % 50 == 0:
                progress.console.print(f"step {step} loss {loss:.4f} {seconds_per_step:.2f}s/step")

        run_training(options, training_data, on_step, notify=lambda m: progress.console.print(f"[yellow]note:[/] {m}"))
