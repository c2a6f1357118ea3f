"""What every settings dataclass shares: `SettingError`, the flag a setting is exposed as, field metadata.

A settings class (`EnhanceSettings`, `VideoSettings`, `TrainSettings`) is a
frozen dataclass that derives from `Settings`, validates itself on creation,
and describes each field in its metadata (`meta`): the command-line flag, the
metavar, the help text, the allowed choices and bounds. The CLI makes its
options from that metadata (`cli/options.py`), so defaults and help are
written once, in the dataclass.

A bad value raises `SettingError`, which names the setting (`.setting`, the
field name) as the library does (`steps must be at least 1, got 0`); the CLI
words it with the command-line option the field is exposed as (`--steps must
be at least 1, got 0`, `option_name`), as it does every setting an error
names (`errors.Setting`). A field shared by two classes (`steps`, `seed`,
`device`, ...) has the same flag in both.
"""

from __future__ import annotations

import dataclasses
from dataclasses import fields
from typing import Any, TypeVar

from lowlight_cli.errors import Setting, UsageError

SETTINGS_CLASSES: list[type] = []  # every `Settings` subclass, in definition order: where flags are looked up
S = TypeVar("S", bound="Settings")


class SettingError(UsageError):
    """An invalid setting: `setting` is the field's name, which the message starts with (`work_size must be ...`);
    the CLI words it as its command-line option (`--work-size must be ...`)."""

    def __init__(self, setting: str, *reason: str) -> None:
        """`reason`'s parts follow the setting's name; a `Setting` among them names another setting."""
        self.setting, self.reason = setting, "".join(reason)
        super().__init__(Setting(setting), " ", *reason)


class Settings:
    """The base of the settings dataclasses: registers each one for `option_name`, and `with_changes`."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        SETTINGS_CLASSES.append(cls)

    def with_changes(self: S, **changes: Any) -> S:
        """A copy with `changes` applied (and validated)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]  # every subclass is a dataclass


def option_name(setting: str) -> str:
    """The command-line option a setting is exposed as (`work_size` → `--work-size`), or its own name.

    A boolean's `--tone/--no-tone` is named by its first form."""
    for cls in SETTINGS_CLASSES:
        for item in fields(cls):
            if item.name == setting and item.metadata.get("flag"):
                return item.metadata["flag"].split("/")[0]
    return setting


def meta(
    flag: str | None = None,
    metavar: str | None = None,
    help: str = "",
    choices: tuple[str, ...] | None = None,
    **bounds: float,
) -> dict[str, Any]:
    """A field's metadata: its flag (None: a library-only setting), metavar, help, choices and typer bounds."""
    return {"flag": flag, "metavar": metavar, "help": help, "choices": choices, **bounds}


def check_choice(setting: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SettingError(setting, f"'{value}' is not one of {', '.join(choices)}")


def check_at_least(setting: str, value: float | None, least: float, unit: str = "") -> None:
    """`value` (None: not set, allowed) must be at least `least`."""
    if value is not None and value < least:
        raise SettingError(setting, f"must be at least {least:g}{unit}, got {value}")


def check_share(setting: str, value: float, most: float = 1.0, most_text: tuple[str, ...] = ("1",)) -> None:
    """A share: within [0, `most`] (`most_text`, message parts, says what `most` is)."""
    if not 0 <= value <= most:
        raise SettingError(setting, "must be in [0, ", *most_text, f"], got {value}")
