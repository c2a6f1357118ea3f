"""Command-line options made from the settings dataclasses, and the pipeline the enhancing commands build.

`@settings_options(cls)` adds one typer option per field of a settings class
(`EnhanceSettings`, `VideoSettings`, `TrainSettings`: flag, default, metavar,
help, choices and bounds from the field's metadata) to a command and hands
the command one validated settings object instead. With `recipe=True` it
also adds `--recipe FILE`, whose settings the options given on the command
line override. Torch-free: the pipeline is imported only when
`build_pipeline` runs.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import fields
from enum import Enum
from pathlib import Path
from typing import Any, cast

import typer

from lowlight_cli.cli.app import STATE, console
from lowlight_cli.settings import EnhanceSettings
from lowlight_cli.settings.train import TrainSettings

RECIPE = typer.Option(
    None,
    "--recipe",
    metavar="FILE",
    help="A recipe: a TOML file of these settings by name (ssim_weight = 0.8), such as the shipped model's in "
    "the repository's recipes/ folder. Options given here override it.",
)


def choice_enum(name: str, choices: tuple[str, ...]) -> type[Enum]:
    """A str Enum of `choices`, which typer shows as `a|b|c` and checks."""
    return cast(type[Enum], Enum(name, {choice: choice for choice in choices}, type=str))  # a class, not a member


@functools.cache  # one Enum per field, the same for its default and its annotation
def option_type(cls: type, name: str) -> Any:
    """The type typer parses a field's option as: its choices as an Enum, a list of folders as one
    comma-separated string, else the field's own type."""
    item = next(item for item in fields(cls) if item.name == name)
    if item.metadata.get("choices"):
        return choice_enum(name.title().replace("_", ""), item.metadata["choices"])
    hint = typing.get_type_hints(cls)[name]
    return str | None if typing.get_origin(hint) is tuple else hint


def setting_option(cls: type, name: str) -> Any:
    """The typer option of one settings field."""
    item = next(item for item in fields(cls) if item.name == name)
    meta = item.metadata
    default = item.default
    if meta.get("choices"):
        default = option_type(cls, name)(default)
    elif isinstance(default, tuple):  # the data folders: none by default
        default = ",".join(str(part) for part in default) or None
    bounds = {key: meta[key] for key in ("min", "max") if key in meta}
    return typer.Option(default, meta["flag"], metavar=meta["metavar"], help=meta["help"], **bounds)


def options_of(cls: type) -> dict[str, Any]:
    """The options of a settings class, by field (those with a command-line flag)."""
    return {item.name: setting_option(cls, item.name) for item in fields(cls) if item.metadata.get("flag")}


OPTIONS = options_of(EnhanceSettings)  # the enhancing commands' options


def from_option(value: Any) -> Any:
    """A parsed option's value as the settings take it: an Enum member's value."""
    return value.value if isinstance(value, Enum) else value


def settings_options(
    cls: type = EnhanceSettings,
    exclude: tuple[str, ...] = (),
    into: str = "settings",
    recipe: bool = False,
    before: str | None = None,
) -> Callable[[Callable], Callable]:
    """Give a command every option of settings class `cls` (but `exclude`); it is called with `into=cls(...)`.

    The options come after the command's own, or `before` one of them (the order of the help's panels).

    With `recipe`, the command also takes `--recipe FILE` (`TrainSettings.from_recipe`): the file's settings,
    then those given on the command line over them."""
    options = options_of(cls)
    names = [name for name in options if name not in exclude]
    hints = {name: option_type(cls, name) for name in names}
    folders = [name for name in names if typing.get_origin(typing.get_type_hints(cls)[name]) is tuple]

    def decorate(command: Callable) -> Callable:
        signature = inspect.signature(command, eval_str=True)
        own = [param for param in signature.parameters.values() if param.name != into]
        added = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=options[name], annotation=hints[name])
            for name in names
        ]
        if recipe:  # and the context, which says which options the command line gave
            added.append(
                inspect.Parameter(
                    "recipe_context", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=typer.Context
                )
            )
            added.append(
                inspect.Parameter("recipe", inspect.Parameter.KEYWORD_ONLY, default=RECIPE, annotation=Path | None)
            )

        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> Any:
            values = {name: from_option(kwargs.pop(name)) for name in names}
            for name in folders:  # given as `a,b`
                values[name] = tuple(Path(part) for part in (values[name] or "").split(",") if part)
            recipe_file, context = kwargs.pop("recipe", None), kwargs.pop("recipe_context", None)
            if recipe_file is None:
                return command(**{into: cls(**values)}, **kwargs)
            given = {name: value for name, value in values.items() if given_on_command_line(context, name)}
            return command(**{into: cast(type[TrainSettings], cls).from_recipe(recipe_file, **given)}, **kwargs)

        at = next((i for i, param in enumerate(own) if param.name == before), len(own))
        if at < len(own):  # among the command's own parameters: of their kind (typer passes all by keyword)
            added = [param.replace(kind=own[at].kind) for param in added]
        wrapper.__signature__ = signature.replace(parameters=own[:at] + added + own[at:])  # type: ignore[attr-defined]  # read by inspect
        return wrapper

    return decorate


def given_on_command_line(context: typer.Context, name: str) -> bool:
    source = context.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def build_pipeline(settings: EnhanceSettings):
    """The `Pipeline` for `settings`, saying what it uses under --verbose; notes go to stderr."""
    from lowlight_cli.pipeline import build

    out = console()
    # Notes (the built-in prior standing in for SAM, ...) are the same on every run: said under --verbose
    # (and by `lowlight models list`), not each time.
    notify = (lambda m: out.print(f"[yellow]note:[/] {m}")) if STATE["verbose"] else (lambda m: None)
    pipeline = build(settings, notify=notify)
    if STATE["verbose"]:
        out.print(
            f"model: {settings.model} on {pipeline.device} ({str(pipeline.dtype).replace('torch.', '')}), "
            f"{settings.describe()}"
        )
    return pipeline
