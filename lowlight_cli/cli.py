"""The `lowlight` command line: parse options, call the library, print.

Heavy modules (torch, cv2, the pipeline) are imported inside commands so that
`lowlight --help` and `lowlight --version` answer instantly without torch.
Every `LowlightError` becomes one red line and a non-zero exit code; other
exceptions show a traceback only with --verbose.
"""

from __future__ import annotations

import functools
import sys
from enum import Enum
from pathlib import Path
from typing import Callable, Optional

import typer

from lowlight_cli import __version__

app = typer.Typer(
    name="lowlight",
    help="Enhance dark photos and videos with a SAM prior-guided diffusion model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="List, download and locate model weights.", no_args_is_help=True)
app.add_typer(models_app, name="models")


class Device(str, Enum):
    auto = "auto"
    cuda = "cuda"
    mps = "mps"
    cpu = "cpu"


class Prior(str, Enum):
    auto = "auto"
    sam = "sam"
    fallback = "fallback"
    none = "none"


class SamModel(str, Enum):
    vit_b = "vit_b"
    vit_l = "vit_l"
    vit_h = "vit_h"


STATE = {"verbose": False, "quiet": False}


def console():
    from rich.console import Console

    return Console(stderr=True, quiet=STATE["quiet"])


def fail(message: str, code: int = 1) -> None:
    from rich.markup import escape

    from rich.console import Console

    Console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def handle_errors(command: Callable) -> Callable:
    """Turn known errors into one line + exit code; Ctrl-C into exit 130."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from lowlight_cli.errors import LowlightError

        try:
            return command(*args, **kwargs)
        except LowlightError as exc:
            if STATE["verbose"]:
                import traceback

                traceback.print_exc()
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            console().print("[yellow]interrupted[/]: finished outputs are kept; re-run to resume")
            raise typer.Exit(130)
        except MemoryError:
            fail("out of memory: try a smaller --work-size, or --device cpu")
        except typer.Exit:
            raise
        except Exception as exc:  # a bug: keep the traceback for --verbose only
            if STATE["verbose"]:
                raise
            fail(f"unexpected {type(exc).__name__}: {exc} (re-run with --verbose for details)")

    return wrapper


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"lowlight-cli {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log details (timings, prior regions) and show tracebacks."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only errors."),
    version: Optional[bool] = typer.Option(None, "--version", callback=version_callback, is_eager=True,
                                           help="Print the version and exit."),
) -> None:
    STATE["verbose"], STATE["quiet"] = verbose, quiet


@app.command()
@handle_errors
def train(
    data: str = typer.Option(..., help="Comma-separated folders: SICE layout (pairs.csv), low/+high/ pairs, "
                                         "or plain photos for synthetic darkening."),
    out: Path = typer.Option(..., help="Checkpoint to write (.safetensors); <out>.state.safetensors holds the resumable state."),
    steps: int = typer.Option(4000, help="Optimiser steps in total (a resumed run continues to this count)."),
    batch_size: int = typer.Option(8, help="Crops per step."),
    crop: int = typer.Option(96, help="Crop side in pixels (a multiple of 8)."),
    lr: float = typer.Option(2e-4, help="Peak learning rate (AdamW, cosine decay)."),
    prior: Prior = typer.Option(Prior.fallback, help="Region prior for training: fallback (built-in), sam, or none."),
    sam_model: SamModel = typer.Option(SamModel.vit_b, help="SAM size when --prior sam."),
    sam_checkpoint: Optional[Path] = typer.Option(None, help="Local SAM checkpoint (.safetensors)."),
    semantic_weight: float = typer.Option(0.5, help="Weight of the semantic-context regularisation loss."),
    no_diffusion: bool = typer.Option(False, "--no-diffusion", help="Train the plain U-Net regression baseline instead."),
    base_channels: int = typer.Option(24, help="U-Net width at full resolution."),
    seed: int = typer.Option(0, help="Random seed."),
    save_every: int = typer.Option(200, help="Write checkpoint + state every N steps."),
    threads: int = typer.Option(0, help="CPU threads for torch (0 = torch's default)."),
    device: Device = typer.Option(Device.auto, help="Compute device."),
) -> None:
    """Train a denoiser on paired and/or synthetic data (resumes automatically)."""
    import torch

    from lowlight_cli.devices import resolve_device
    from lowlight_cli.models.config import ModelConfig
    from lowlight_cli.priors.factory import make_prior_fn
    from lowlight_cli.training.data import TrainingData
    from lowlight_cli.training.trainer import TrainOptions
    from lowlight_cli.training.trainer import train as run_training

    if threads:
        torch.set_num_threads(threads)
    torch_device = resolve_device(device.value)
    config = ModelConfig(base_channels=base_channels, diffusion=not no_diffusion, use_prior=prior != Prior.none)
    out_console = console()
    prior_fn = make_prior_fn("fallback" if prior == Prior.auto else prior.value, config.max_regions, sam_model.value,
                             sam_checkpoint, device=str(torch_device), notify=out_console.print)
    folders = [Path(p) for p in data.split(",") if p]
    training_data = TrainingData(folders, prior_fn, config.target_brightness, crop, log=out_console.print)
    out_console.print(repr(training_data))
    options = TrainOptions(data=folders, out=out, steps=steps, batch_size=batch_size, crop=crop, lr=lr,
                           semantic_weight=semantic_weight, prior=prior.value, seed=seed, save_every=save_every,
                           device=str(torch_device), config=config)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(TextColumn("training"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TextColumn("loss {task.fields[loss]:.4f}"), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=out_console, refresh_per_second=1) as progress:
        task = progress.add_task("train", total=steps, loss=float("nan"))

        def on_step(step: int, loss: float, seconds_per_step: float) -> None:
            progress.update(task, completed=step, loss=loss)
            if STATE["verbose"] and step % 50 == 0:
                progress.console.print(f"step {step} loss {loss:.4f} {seconds_per_step:.2f}s/step")

        run_training(options, training_data, on_step)
    out_console.print(f"wrote {out}")


if __name__ == "__main__":  # pragma: no cover
    app()
