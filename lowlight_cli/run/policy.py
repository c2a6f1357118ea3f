"""The one error policy: how a task's exception becomes a reported failure, for every executor.

A `LowlightError` is a problem with that one file (its message already
names it) and a `MemoryError` is that file being too large for the
settings: both fail the task and the run goes on. Anything else is a bug:
in this process it propagates, so it is seen with its traceback; on a Ray
worker (`contain_unexpected`) it fails only its file, since one bad file
must not take a cluster's job down. A problem that is no one file's (the
model cannot be built) is raised as `RunFailed` and stops the run.
KeyboardInterrupt always propagates.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from lowlight_cli.errors import DeviceError, LowlightError, Setting

Status = Literal["done", "skipped", "failed"]


@dataclass(frozen=True)
class Outcome:
    """What running one task came to: done, skipped (its output was there) or failed with `reason`."""

    status: Status
    reason: str | LowlightError = ""  # an error keeps its parts, so the CLI words the settings it names


class RunFailed(Exception):
    """The run cannot go on (its cause, a `LowlightError`, is what the user sees): not any one task's failure."""


def guarded(source: object, work: Callable[[], Status], contain_unexpected: bool = False) -> Outcome:
    """Run `work` (one task, named by its `source` in messages); its status, or the failure it raised."""
    try:
        return Outcome(work())
    except LowlightError as exc:
        return Outcome("failed", exc)
    except MemoryError:
        return Outcome("failed", DeviceError(f"{source}: out of memory (try a smaller ", Setting("work_size"), ")"))
    except RunFailed:
        raise
    except Exception as exc:
        if not contain_unexpected:
            raise
        return Outcome("failed", f"{source}: unexpected {type(exc).__name__}: {exc}")


def reason_to_row(reason: str | LowlightError) -> str:
    """A failure's reason as one JSON line of its message's parts, each settings part marked: what a Ray worker
    sends back in its row, since a plain string would lose which words are settings (`work_size`) that the
    CLI writes as options (`--work-size`)."""
    parts = reason.parts if isinstance(reason, LowlightError) else (reason,)
    return json.dumps([[str(part), isinstance(part, Setting)] for part in parts])


def reason_from_row(row: str) -> str | LowlightError:
    """The reason `reason_to_row` wrote: an error with its settings marked again (an empty one for no failure)."""
    parts = [Setting(text) if setting else text for text, setting in json.loads(row)]
    return LowlightError(*parts) if any(isinstance(part, Setting) for part in parts) else "".join(parts)
