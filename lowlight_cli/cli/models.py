"""`lowlight info` and `lowlight models list|download|path`: what is installed and where (`checkpoints/locate.py`)."""

from __future__ import annotations

import typer

from lowlight_cli import __version__
from lowlight_cli.cli.app import STATE, LowlightCommand, app, handle_errors, models_app


@app.command(cls=LowlightCommand)
@handle_errors
def info() -> None:
    """Versions, devices found, cache folder and which weights are present."""
    import platform

    import torch

    from lowlight_cli.checkpoints.hub import cache_dir
    from lowlight_cli.checkpoints.locate import default_model_path, known_models
    from lowlight_cli.runtime.devices import mps_available

    lines = [f"lowlight-cli {__version__}, Python {platform.python_version()}, torch {torch.__version__}"]
    cuda = torch.cuda.is_available()
    lines.append(f"CUDA: {torch.cuda.get_device_name(0) if cuda else 'not available'}")
    lines.append(f"MPS: {'available' if mps_available() else 'not available'}")
    lines.append(f"Hugging Face cache: {cache_dir()}")
    default = default_model_path()
    lines.append(f"default model: {default} ({'present' if default.exists() else 'MISSING'})")
    for model in known_models()[1:]:
        lines.append(f"{model.name}: {model.path if model.path else 'not downloaded'}")
    typer.echo("\n".join(lines))


@models_app.command("list", cls=LowlightCommand)
@handle_errors
def models_list() -> None:
    """Known checkpoints: the bundled denoiser and the SAM models, and which prior `--prior auto` uses."""
    from rich.console import Console
    from rich.table import Column, Table

    from lowlight_cli.checkpoints.locate import known_models
    from lowlight_cli.settings import EnhanceSettings
    from lowlight_cli.settings.names import sam_size

    models = known_models()
    # Three columns fit 80 characters, one line per model; each source follows on its own line.
    table = Table(
        Column("name", no_wrap=True),
        Column("state", no_wrap=True),
        "description",
        box=None,
        pad_edge=False,
        header_style="bold",
    )
    for model in models:
        table.add_row(model.name, model.state, model.description)
    out = Console(soft_wrap=False)
    out.print(table)
    for model in models:
        out.print(f"{model.name}: {model.source}", highlight=False)
    sam = next(m for m in models if m.name == sam_size(EnhanceSettings().sam_model).checkpoint)
    out.print(
        f"--prior auto: {sam.name} if downloaded, else built-in (now: {'SAM' if sam.path else 'built-in'})",
        highlight=False,
    )


def check_names(names: list[str]) -> None:
    """A name `lowlight models list` does not show is a wrong command line (exit 2), before any download."""
    from lowlight_cli.checkpoints.hub import REGISTRY
    from lowlight_cli.checkpoints.locate import BUNDLED_NAMES
    from lowlight_cli.errors import UsageError

    for name in names:
        if name not in REGISTRY and name not in BUNDLED_NAMES:
            known = [*sorted(BUNDLED_NAMES), *sorted(REGISTRY)]
            raise UsageError(f"unknown checkpoint '{name}' (known: {', '.join(known)})")


def download_names(incomplete: str) -> list[str]:
    """Shell completion of `models download`: the registry's names."""
    from lowlight_cli.checkpoints.hub import REGISTRY

    return [name for name in REGISTRY if name.startswith(incomplete)]


@models_app.command("download", cls=LowlightCommand)
@handle_errors
def models_download(
    names: list[str] = typer.Argument(
        ..., metavar="NAME", autocompletion=download_names, help="Checkpoint names from `lowlight models list`."
    ),
) -> None:
    """Download checkpoints into the Hugging Face cache (pinned revision, sha256-checked)."""
    from lowlight_cli.checkpoints.hub import fetch_checkpoint
    from lowlight_cli.checkpoints.locate import BUNDLED_NAMES

    check_names(names)
    for name in names:
        if name in BUNDLED_NAMES:  # nothing to fetch: a line that says so, not a failure
            typer.echo(f"{name}: ships inside lowlight-cli, no download needed")
        else:
            typer.echo(str(fetch_checkpoint(name, progress=not STATE["quiet"])))


@models_app.command("path", cls=LowlightCommand)
@handle_errors
def models_path(name: str = typer.Argument(..., metavar="NAME", help="Checkpoint name.")) -> None:
    """Print the local path of a checkpoint (error if it is not downloaded)."""
    from lowlight_cli.checkpoints.locate import cached_path

    check_names([name])
    typer.echo(str(cached_path(name)))
