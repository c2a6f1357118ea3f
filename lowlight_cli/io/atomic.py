"""Atomic writes: a file appears complete under its name, or not at all.

Every file the package writes (images, checkpoints, training state, cached
priors, videos) goes through a temporary file in the target's own folder
and one `os.replace`, so a reader, a crash or Ctrl-C never meets half a file
and a failed write leaves no partial file behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def temporary_beside(target: Path, suffix: str = ".part") -> Path:
    """An empty private file next to `target` (same filesystem, so the final rename is atomic).

    Raises OSError when the folder cannot be written.
    """
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    return Path(name)


def commit(temporary: Path, target: Path, fsync: bool = True) -> None:
    """Move a finished temporary file into place: flushed to disk, an ordinary 0644 file, renamed atomically."""
    if fsync:
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
    os.chmod(temporary, 0o644)  # mkstemp made it private; the result is an ordinary file
    os.replace(temporary, target)


def discard(temporary: Path) -> None:
    """Remove a temporary file that will not be committed (it may already be gone)."""
    try:
        os.unlink(temporary)
    except FileNotFoundError:
        pass


@contextlib.contextmanager
def atomic_path(target: Path, suffix: str = ".part", fsync: bool = True) -> Iterator[Path]:
    """A temporary path to write `target`'s content to; committed on success, removed on any exception."""
    target = Path(target)
    temporary = temporary_beside(target, suffix)
    try:
        yield temporary
        commit(temporary, target, fsync)
    except BaseException:
        discard(temporary)
        raise


def write_bytes(target: Path, data: bytes, fsync: bool = True) -> None:
    """`target.write_bytes(data)`, atomically."""
    with atomic_path(target, fsync=fsync) as temporary:
        temporary.write_bytes(data)
