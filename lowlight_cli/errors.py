"""User-facing error types.

Every failure a user can cause or fix (bad file, missing weights, no device)
is raised as a `LowlightError` subclass whose message is one readable line.
The CLI prints that line and exits non-zero; anything else is a bug and only
shows a traceback with `--verbose`.

The library speaks its own language: a message that names a setting names
it as the library does (`work_size`), marked as a `Setting` part, and the
CLI shows it as the command-line option it is (`--work-size`, through
`LowlightError.worded`).
"""

from __future__ import annotations

from collections.abc import Callable


class Setting(str):
    """A setting's name within an error message (`work_size`): the CLI words it as its option (`--work-size`)."""


class LowlightError(Exception):
    """Base class: the message, made of `parts`, is shown to the user as it is, but for the settings it names."""

    exit_code = 1

    def __init__(self, *parts: str) -> None:
        self.parts = parts
        super().__init__("".join(parts))

    def worded(self, name: Callable[[str], str]) -> str:
        """The message with each `Setting` it names written by `name` (the CLI: `work_size` → `--work-size`)."""
        return "".join(name(part) if isinstance(part, Setting) else part for part in self.parts)

    def __reduce__(self) -> tuple:
        """Pickled (a Ray worker's error) with its parts, whatever a subclass's own arguments."""
        return _rebuilt, (type(self), self.parts, self.__dict__)


def _rebuilt(kind: type[LowlightError], parts: tuple[str, ...], state: dict) -> LowlightError:
    error = kind.__new__(kind)
    LowlightError.__init__(error, *parts)
    error.__dict__.update(state)
    return error


class InputError(LowlightError):
    """The input file is missing, unreadable, corrupt or unsupported."""


class OutputError(LowlightError):
    """The output cannot be written where asked (or would overwrite the input)."""


class WeightsError(LowlightError):
    """A checkpoint is missing, corrupt, mismatched or cannot be downloaded."""


class DeviceError(LowlightError):
    """The requested compute device is unavailable or ran out of memory."""


class UsageError(LowlightError):
    """An option value is invalid."""

    exit_code = 2
