"""User-facing error types.

Every failure a user can cause or fix (bad file, missing weights, no device)
is raised as a `LowlightError` subclass whose message is one readable line.
The CLI prints that line and exits non-zero; anything else is a bug and only
shows a traceback with `--verbose`.
"""


class LowlightError(Exception):
    """Base class: the message is shown to the user as-is."""

    exit_code = 1


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
