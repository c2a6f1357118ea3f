"""The enhancing commands' options, made from `settings.EnhanceSettings`, and the enhancer they build.

`@settings_options` adds one typer option per settings field (flag, default,
metavar, help and bounds from the field's metadata) to a command and hands
the command one validated `EnhanceSettings` instead. Torch-free: the
pipeline is imported only when `build_enhancer` runs.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import MISSING, fields
from enum import Enum
from pathlib import Path
from typing import Any, cast

import typer

from lowlight_cli.cli.app import STATE, console
from lowlight_cli.settings import DEVICE_CHOICES, HIGHLIGHT_MODES, PRIOR_KINDS, SAM_MODEL_TYPES, EnhanceSettings


def choice_enum(name: str, choices: tuple[str, ...]) -> type[Enum]:
    """A str Enum of `choices`, which typer shows as `a|b|c` and checks."""
    return cast(type[Enum], Enum(name, {choice: choice for choice in choices}, type=str))  # a class, not a member


Device = choice_enum("Device", DEVICE_CHOICES)
Prior = choice_enum("Prior", PRIOR_KINDS)
SamModel = choice_enum("SamModel", SAM_MODEL_TYPES)
Highlights = choice_enum("Highlights", HIGHLIGHT_MODES)
CHOICES = {"device": Device, "prior": Prior, "sam_model": SamModel, "highlights": Highlights}
TYPES = {
    "model": str,
    "sam_checkpoint": Path | None,
    "steps": int,
    "seed": int,
    "work_size": int,
    "full_res": bool,
    "tile": int,
    "detail_threshold": float,
    "shadow_denoise": float,
    "exposure": float,
}


def setting_option(name: str) -> Any:
    """The typer option of one settings field."""
    item = next(item for item in fields(EnhanceSettings) if item.name == name)
    meta = item.metadata
    default = item.default if item.default is not MISSING else None
    if name in CHOICES:
        default = CHOICES[name](default)
    bounds = {key: meta[key] for key in ("min", "max") if key in meta}
    return typer.Option(default, meta["flag"], metavar=meta["metavar"], help=meta["help"], **bounds)


# The options, by field (those with a command-line flag); `cli.STEPS` etc. are what tests compare with the settings.
OPTIONS = {item.name: setting_option(item.name) for item in fields(EnhanceSettings) if item.metadata.get("flag")}
STEPS, WORK_SIZE, DETAIL = OPTIONS["steps"], OPTIONS["work_size"], OPTIONS["detail_threshold"]
SHADOW, EXPOSURE = OPTIONS["shadow_denoise"], OPTIONS["exposure"]


def settings_options(exclude: tuple[str, ...] = ()) -> Callable[[Callable], Callable]:
    """Give a command every settings option (but `exclude`); it is called with `settings=EnhanceSettings(...)`."""
    names = [name for name in OPTIONS if name not in exclude]

    def decorate(command: Callable) -> Callable:
        signature = inspect.signature(command, eval_str=True)
        own = [param for param in signature.parameters.values() if param.name != "settings"]
        added = [
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=OPTIONS[name], annotation=CHOICES.get(name) or TYPES[name]
            )
            for name in names
        ]

        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) for name in names}
            values = {name: value.value if isinstance(value, Enum) else value for name, value in values.items()}
            return command(settings=EnhanceSettings(**values), **kwargs)

        wrapper.__signature__ = signature.replace(parameters=own + added)  # type: ignore[attr-defined]  # read by inspect
        return wrapper

    return decorate


def build_enhancer(settings: EnhanceSettings):
    """The pipeline's `Enhancer` for `settings`, saying what it uses under --verbose; notes go to stderr."""
    from lowlight_cli.pipeline import Enhancer

    out = console()
    # Notes (the built-in prior standing in for SAM, ...) are the same on every run: said under --verbose
    # (and by `lowlight models list`), not each time.
    notify = (lambda m: out.print(f"[yellow]note:[/] {m}")) if STATE["verbose"] else (lambda m: None)
    enhancer = Enhancer(settings=settings, notify=notify)
    if STATE["verbose"]:
        out.print(
            f"model: {settings.model} on {enhancer.device} ({str(enhancer.dtype).replace('torch.', '')}), "
            f"{settings.describe()}"
        )
    return enhancer
