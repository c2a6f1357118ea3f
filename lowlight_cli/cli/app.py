"""The `lowlight` app: its command classes, help panels, logging flags and error handling.

The commands themselves live beside this module, one per command group.

Heavy modules (torch, cv2, the pipeline) are imported inside commands so that
`lowlight --help` and `lowlight --version` answer instantly without torch.
Every `LowlightError` becomes one red line and a non-zero exit code; other
exceptions show a traceback only with --verbose.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from lowlight_cli import __version__


class PlainOption(TyperOption):
    """An option whose help shows a metavar (INTEGER, PATH, auto|cpu), never a Python type, and none for a flag.

    Typer prints `<bool>` beside flags, which reads as if `--overwrite true`
    were valid, and Python annotations such as `<list[Path]>` elsewhere.
    """

    def display_type_rich(self, ctx: Any) -> str | None:
        if self.is_flag:
            return None
        if self.metavar is not None:
            return self.metavar
        described = self.type_descriptor
        if described.is_choice:
            return self.display_type(ctx).strip("<>")  # auto|cuda|mps|cpu
        if described.is_path:
            return "PATH"
        return {int: "INTEGER", float: "NUMBER"}.get(described.annotation, "TEXT")


class PlainArgument(TyperArgument):
    """An argument shown by its metavar (PHOTO...), not as `{inputs}...` with a `<list[Path]>` type."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def _usage_display_name(self) -> str:
        name = (self.metavar or self.name.upper()) + ("..." if self.nargs != 1 else "")
        return name if self.required else f"[{name}]"


def plain_params(command: Any, panels: dict[str, list[str]]) -> None:
    """Give `command`'s parameters plain metavars, and each option listed in `panels` its help panel."""
    for param in command.params:
        param.__class__ = PlainArgument if isinstance(param, TyperArgument) else PlainOption
        if isinstance(param, TyperOption) and param.rich_help_panel is None:
            param.rich_help_panel = next((panel for panel, names in panels.items() if param.name in names), None)


def plain_options(params: list[Any]) -> list[Any]:
    """`params` with typer's own options (--help, completion) shown without a `<bool>` type too."""
    for param in params:
        if isinstance(param, TyperOption):
            param.__class__ = PlainOption
    return params


class LowlightCommand(TyperCommand):
    """Every `lowlight` subcommand: help in panels with plain metavars, and a one-line
    hint for a file whose name starts with '-' (rather than click's boxed "No such option")."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        plain_params(self, TRAIN_PANELS if self.name == "train" else PANELS)

    def get_params(self, ctx: Any) -> list[Any]:
        return plain_options(super().get_params(ctx))

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        from typer._click.exceptions import NoSuchOption

        args = bare_ray_flag(args)
        given = list(args)  # the parser consumes `args`
        try:
            return super().parse_args(ctx, args)
        except NoSuchOption:
            known = {name for param in self.get_params(ctx) for name in param.opts + param.secondary_opts}
            end = given.index("--") if "--" in given else len(given)
            for arg in given[:end]:
                looks_like_a_file = "." in arg or "/" in arg or Path(arg).exists()
                if arg.startswith("-") and arg != "-" and arg.split("=")[0] not in known and looks_like_a_file:
                    fail(f"{arg}: a name starting with '-' is read as an option; write ./{arg} or put -- before it", 2)
            raise


def bare_ray_flag(args: list[str]) -> list[str]:
    """`--ray` takes an optional value: `--ray`, `--ray auto`, `--ray HOST:6379`, `--ray ray://HOST:10001`.

    Click options take a value or none, never either; so a `--ray` whose next
    word is not an address (an option, a folder, nothing) is rewritten to
    `--ray=` (empty: Ray's own order of addresses).
    """
    import re

    end = args.index("--") if "--" in args else len(args)
    address = re.compile(r"^(auto|local|ray://\S+|[\w.\-]+:\d+|\[[0-9a-fA-F:]+\]:\d+)$")
    out = []
    for index, arg in enumerate(args):
        nxt = args[index + 1] if index + 1 < end else None
        out.append("--ray=" if arg == "--ray" and index < end and (nxt is None or not address.match(nxt)) else arg)
    return out


LOGGING_FLAGS = {"-v", "--verbose", "-q", "--quiet"}


class LowlightGroup(TyperGroup):
    """The root command: -v/-q are taken anywhere before `--`, so `lowlight enhance x.jpg -v` works too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        plain_params(self, {})

    def get_params(self, ctx: Any) -> list[Any]:
        return plain_options(super().get_params(ctx))

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        """Run; a wrong command line (a missing argument, an unknown option, a bad value) is one line and exit
        code 2, as every other error is one line, instead of Typer's boxed panel."""
        import sys

        from typer._click import exceptions  # Typer vendors Click: its exception classes live here only

        # mypy: `*args` might also fill `standalone_mode`; our callers pass it by keyword only.
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)  # type: ignore[misc]
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)  # type: ignore[misc]
        except exceptions.NoArgsIsHelpError as exc:
            typer.echo(exc.ctx.get_help() if exc.ctx else str(exc))
            sys.exit(exc.exit_code)
        except exceptions.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else "lowlight"
            typer.echo(f"error: {exc.format_message()} (see '{where} --help')", err=True)
            sys.exit(exc.exit_code)
        except exceptions.ClickException as exc:
            typer.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        end = args.index("--") if "--" in args else len(args)
        flags = [arg for arg in args[:end] if arg in LOGGING_FLAGS]
        rest = [arg for arg in args[:end] if arg not in LOGGING_FLAGS]
        return super().parse_args(ctx, flags + rest + args[end:])


# Help panels: which option of the enhancing commands (and of train) is listed where; the rest under "Options".
PANELS = {
    "Output": ["output", "fmt", "quality", "overwrite", "frame_format"],
    "Input": ["recursive", "glob", "start", "end", "max_frames", "fps"],
    "Look": ["exposure", "highlights", "detail_threshold", "shadow_denoise", "smoothing"],
    "Model and prior": ["model", "prior", "sam_model", "sam_checkpoint"],
    "Quality and speed": ["steps", "work_size", "full_res", "tile", "seed", "device"],
    "Cluster (Ray)": ["ray", "workers", "gpus_per_worker", "cpus_per_worker"],
}
TRAIN_PANELS = {
    "Data and output": ["recipe", "data", "out", "init", "save_every", "stop_at"],
    "Schedule": [
        "steps",
        "tone_steps",
        "batch_size",
        "tone_batch_size",
        "crop",
        "native_share",
        "lr",
        "tone_lr",
        "ema_decay",
        "seed",
    ],
    "Model": ["base_channels", "tone", "look", "tone_parts", "no_diffusion", "mean_start", "prior_map_scale"],
    "Losses": ["ssim_weight", "colour_weight", "teacher_gains", "semantic_weight", "final_step_share", "refine_share"],
    "Region prior": ["prior", "sam_model", "sam_checkpoint"],
    "Hardware": ["device", "threads", "workers"],
}

app = typer.Typer(
    name="lowlight",
    cls=LowlightGroup,
    help="Enhance dark photos and videos with a SAM prior-guided diffusion model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(cls=LowlightGroup, help="List, download and locate model weights.", no_args_is_help=True)
app.add_typer(models_app, name="models")


STATE = {"verbose": False, "quiet": False}


def console():
    from rich.console import Console

    return Console(stderr=True, quiet=STATE["quiet"], soft_wrap=True)


def fail(message: str, code: int = 1) -> None:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def flag(setting: str) -> str:
    """How the CLI words a setting an error names: a settings field by its flag (by its name if it has none),
    any other by its command's option (`ray` → `--ray`)."""
    from dataclasses import fields

    from lowlight_cli.settings.common import SETTINGS_CLASSES, option_name

    if any(item.name == setting for cls in SETTINGS_CLASSES for item in fields(cls)):
        return option_name(setting)
    return "--" + setting.replace("_", "-")


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
            fail(exc.worded(flag), exc.exit_code)
        except KeyboardInterrupt:
            console().print("[yellow]interrupted[/]: finished outputs are kept; re-run to resume")
            raise typer.Exit(130)  # noqa: B904 - an exit code, not an error; no chained exception (unchanged)
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
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Log details (timings, prior regions) and show tracebacks."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only errors."),
    version: bool | None = typer.Option(
        None, "--version", callback=version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    STATE["verbose"], STATE["quiet"] = verbose, quiet
