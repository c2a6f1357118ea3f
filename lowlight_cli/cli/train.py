"""`lowlight train`: its options (made from `settings.TrainSettings`, or a recipe file's), `training.setup.prepare_run`,
then training under a progress bar."""

from __future__ import annotations

from lowlight_cli.cli.app import STATE, LowlightCommand, app, console, handle_errors
from lowlight_cli.cli.options import settings_options
from lowlight_cli.settings import TrainSettings


@app.command(cls=LowlightCommand)
@handle_errors
@settings_options(TrainSettings, recipe=True)
def train(settings: TrainSettings = None) -> None:  # type: ignore[assignment]  # always given by @settings_options
    """Train a denoiser on paired and/or synthetic data (resumes automatically).

    The defaults train a model from scratch; the shipped model's fine-tuning stages are recipes in the repository's
    recipes/ folder (weights/README.md): lowlight train --recipe recipes/lowlight-default.toml
    On a CPU expect seconds per step; --batch-size 8 --crop 96 costs a quarter as much.
    """
    from lowlight_cli.training.setup import prepare_run

    out_console = console()
    options, training_data = prepare_run(settings, log=out_console.print)
    run_with_progress(options, training_data, out_console)
    out_console.print(f"wrote {settings.out}")


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
