"""Where files live: the local disk or any fsspec filesystem (`s3://`, `gs://`, `memory://`…).

Every place `run/` plans and writes is a `Location`, so that one code path
serves a folder on this machine and a bucket prefix alike. A `Location`
answers the few questions a plan asks of a `pathlib.Path` (`exists`,
`resolve`, `name`, `suffix`, `/`), reads a file whole, and writes one
atomically, never over the inputs it is told to protect.

Outputs are written atomically everywhere: on a local disk through
`io.images.atomic_write` (temporary file, fsync, rename); on an object store
(S3, GCS, Azure) by a single put, which the store makes visible whole or not
at all (a multipart or resumable upload is committed only when complete);
on any other fsspec filesystem by writing a temporary object beside the
target and moving it into place. An interrupted write can leave a temporary
(`.NAME.XXXX.part`) behind on a disk or a move-based filesystem: a run
starts by removing its own outputs' stale ones (`sweep_temporaries_of`).

Credentials come from where each filesystem's own client looks (AWS: the
environment, `~/.aws`, instance roles, `AWS_ENDPOINT_URL` for another
endpoint; GCS: `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's defaults). This
module needs no torch; object stores need their fsspec package (`s3fs`,
`gcsfs`), which the `[ray]` extra installs.

Our own cached files (SAM priors, checkpoint verification stamps) live in
`user_cache_dir()`; downloaded checkpoints live in the Hugging Face cache.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from lowlight_cli.errors import InputError, OutputError, UsageError


def user_cache_dir() -> Path:
    """Where lowlight-cli keeps its own cached files: `$XDG_CACHE_HOME/lowlight-cli`, else
    `~/.cache/lowlight-cli`. The variable is read on every call, so a wrapper or a test that sets it later is
    honoured."""
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "lowlight-cli"


# Stores whose single put is atomic: the object appears complete or not at all.
ATOMIC_PUT_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "memory"})
# What the atomic writes (mkstemp prefix `.NAME.`, suffix `.part`, or `.part.mp4` for a video being encoded)
# and `Location.write_atomic` leave behind when killed.
# One of them named for its target: `.{target}.{random letters}.part[.ext]` (what `temporary_beside` and
# `_write_then_move` make), the target's name recovered so that only a planned output's own is swept.
TEMPORARY_OF = re.compile(r"^\.(?P<target>.+)\.[A-Za-z0-9_]+\.part(\.[A-Za-z0-9]{1,5})?$")
STALE_AFTER_S = 600.0  # a temporary untouched this long belongs to no running write: one image is written in seconds
PACKAGES = {
    "s3": "s3fs",
    "s3a": "s3fs",
    "gs": "gcsfs",
    "gcs": "gcsfs",
    "az": "adlfs",
    "abfs": "adlfs",
    "abfss": "adlfs",
}


def is_url(text: str | os.PathLike[str]) -> bool:
    """`s3://bucket/x`, `gs://…`, `file:///…`: a location named by a URL rather than a plain path."""
    return isinstance(text, str) and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text) is not None


def is_remote(text: str | os.PathLike[str]) -> bool:
    """A URL of a filesystem other than the local disk."""
    return is_url(text) and not str(text).lower().startswith("file://")


class Location:
    """A file or folder on the local disk or in an fsspec filesystem, with the `Path` questions a plan asks.

    `str(location)` is what the user wrote, used in messages (a relative path
    stays relative, as the commands always named files); `os.fspath` gives
    the absolute path or the URL; equality and hashing compare the
    filesystem and its absolute path.
    """

    __slots__ = ("fs", "path", "protocol", "local", "_url")

    def __init__(self, fs: Any, path: str, protocol: str, url: str) -> None:
        self.fs, self.path, self.protocol, self._url = fs, path.rstrip("/") or path, protocol, url.rstrip("/") or url
        self.local = protocol in {"file", "local"}

    # --- construction -----------------------------------------------------------------------------
    @classmethod
    def of(cls, text: str | os.PathLike[str] | Location) -> Location:
        """A `Location` for a path or URL; a missing fsspec package or unknown scheme is a one-line `UsageError`."""
        if isinstance(text, Location):
            return text
        if not is_url(text):
            from fsspec.implementations.local import LocalFileSystem

            written = os.path.expanduser(os.fspath(text))
            return cls(LocalFileSystem(), os.path.abspath(written), "file", written)
        url = str(text)
        scheme = url.split("://", 1)[0].lower()
        if scheme == "file":
            return cls.of(url.split("://", 1)[1] or "/")
        try:
            from fsspec.core import url_to_fs

            fs, path = url_to_fs(url)
        except ImportError:
            package = PACKAGES.get(scheme, f"the fsspec package for {scheme}://")
            raise UsageError(f'{url}: {scheme}:// needs {package} (pip install "lowlight-cli[ray]")') from None
        except ValueError as exc:
            raise UsageError(f"{url}: {exc}") from None
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        return cls(fs, path, protocol, url)

    def _child(self, path: str, url: str) -> Location:
        return Location(self.fs, path, self.protocol, url)

    def named(self, written: str) -> Location:
        """This local place, named in messages as `written` (a Ray worker gets the absolute place and the
        user's words for it apart); a URL is its own name."""
        return self._child(self.path, written) if self.local else self

    # --- the Path-like part ---------------------------------------------------------------------------
    def __truediv__(self, relative: str | os.PathLike[str]) -> Location:
        rel = PurePosixPath(os.fspath(relative)).as_posix().lstrip("/")
        if self.local:
            return self._child(os.path.join(self.path, *rel.split("/")), os.path.join(self._url, *rel.split("/")))
        return self._child(f"{self.path}/{rel}", f"{self._url}/{rel}")

    @property
    def name(self) -> str:
        return PurePosixPath(self.path.replace(os.sep, "/")).name

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    @property
    def stem(self) -> str:
        return PurePosixPath(self.name).stem

    @property
    def parent(self) -> Location:
        if self.local:
            return self._child(os.path.dirname(self.path), os.path.dirname(self._url) or ".")
        cut = self.path.rfind("/")
        url_cut = self._url.rfind("/")
        return self._child(self.path[:cut] if cut > 0 else self.path, self._url[:url_cut] if url_cut > 0 else self._url)

    def with_suffix(self, suffix: str) -> Location:
        drop = len(self.suffix)
        cut = (lambda text: text[: len(text) - drop]) if drop else (lambda text: text)
        return self._child(cut(self.path) + suffix, cut(self._url) + suffix)

    def resolve(self) -> Location:
        """Already absolute; local paths also follow symlinks, as `Path.resolve` does."""
        if self.local:
            return Location.of(os.path.realpath(self.path))
        return self

    def relative_to(self, folder: Location) -> str:
        """This location's path under `folder`, with '/' separators."""
        prefix = folder.path.rstrip("/" + os.sep)
        if not (self.path.startswith(prefix + "/") or self.path.startswith(prefix + os.sep)):
            raise ValueError(f"{self} is not under {folder}")
        return self.path[len(prefix) + 1 :].replace(os.sep, "/")

    def as_path(self) -> Path:
        """The local `Path` (only for a location on the local disk)."""
        if not self.local:
            raise TypeError(f"{self} is not on the local disk")
        return Path(self.path)

    def __fspath__(self) -> str:
        return self.path if self.local else self._url

    def __str__(self) -> str:
        return self._url

    def __repr__(self) -> str:
        return f"Location({self._url!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Location) and (self.protocol, self.path) == (other.protocol, other.path)

    def __hash__(self) -> int:
        return hash((self.protocol, self.path))

    # --- questions and I/O ----------------------------------------------------------------------------
    def exists(self) -> bool:
        if self.local:
            return os.path.exists(self.path)
        self.fs.invalidate_cache(self.path)  # another worker may have written it since we last listed
        return bool(self.fs.exists(self.path))

    def is_dir(self) -> bool:
        if self.local:
            return os.path.isdir(self.path)
        try:
            return bool(self.fs.isdir(self.path))
        except (FileNotFoundError, PermissionError):
            return False

    def modified(self) -> float | None:
        """Last modification as a POSIX timestamp, None where the filesystem cannot say."""
        if self.local:
            try:
                return os.stat(self.path).st_mtime
            except OSError:
                return None
        try:
            return self.fs.modified(self.path).timestamp()
        except (NotImplementedError, FileNotFoundError, AttributeError, OSError, ValueError):
            return None

    def read_bytes(self) -> bytes:
        """The whole file; a missing or unreadable one is an `InputError` naming it."""
        try:
            if self.local:
                with open(self.path, "rb") as handle:
                    return handle.read()
            return bytes(self.fs.cat_file(self.path))
        except FileNotFoundError:
            raise InputError(f"{self}: file not found") from None
        except IsADirectoryError:
            raise InputError(f"{self}: is a folder, not an image") from None
        except (OSError, PermissionError) as exc:
            raise InputError(f"{self}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None

    def write_atomic(self, data: bytes, protect: Iterable[Location] = ()) -> None:
        """Write `data` so that readers see the old file, or none, or all of the new one; never a part."""
        for original in protect:
            if self == Location.of(original):
                raise OutputError(f"{self}: refusing to write over the input file")
        if self.local:
            from lowlight_cli.io.images import atomic_write

            protected = [Location.of(p).as_path() for p in protect if Location.of(p).local]
            # The absolute path, as `exists` and triage saw it (the working directory may have changed since),
            # named in messages as the user wrote it.
            atomic_write(Path(self.path), data, protect=protected, name=str(self))
            return
        try:
            if self.protocol in ATOMIC_PUT_PROTOCOLS:
                self.fs.pipe_file(self.path, data)
            else:
                self._write_then_move(data)
        except OutputError:
            raise
        except Exception as exc:  # noqa: BLE001 - each filesystem has its own errors; the message names the target
            raise OutputError(f"{self}: write failed ({exc}); no partial file was left") from None
        self.fs.invalidate_cache(self.path)

    def _write_then_move(self, data: bytes) -> None:
        parent = self.parent
        temporary = parent / f".{self.name}.{uuid.uuid4().hex[:8]}.part"
        try:
            self.fs.makedirs(parent.path, exist_ok=True)
            self.fs.pipe_file(temporary.path, data)
            self.fs.mv(temporary.path, self.path)
        except BaseException:
            try:
                self.fs.rm_file(temporary.path)
            except Exception:  # noqa: BLE001 - it may never have been created
                pass
            raise

    def remove(self) -> None:
        if self.local:
            os.unlink(self.path)
        else:
            self.fs.rm_file(self.path)

    def list_files(self, recursive: bool) -> list[str]:
        """Files under this folder as sorted '/'-separated relative paths; not a folder is an `InputError`."""
        if not self.is_dir():
            raise InputError(f"{self}: not a folder")
        if self.local:
            root = Path(self.path)
            found = root.rglob("*") if recursive else root.iterdir()
            return sorted(p.relative_to(root).as_posix() for p in found if p.is_file())
        self.fs.invalidate_cache(self.path)
        entries = self.fs.find(self.path, maxdepth=None if recursive else 1, withdirs=False)
        prefix = self.path.rstrip("/") + "/"
        return sorted(entry[len(prefix) :] for entry in entries if entry.startswith(prefix) and entry != prefix)


def sweep_temporaries_of(
    targets: Iterable[str | os.PathLike[str] | Location], older_than: float = 0.0, now: float | None = None
) -> list[str]:
    """Remove the write temporaries of these outputs (`.NAME.XXXX.part` beside each target) untouched for
    `older_than` seconds; the default, whatever their age, is for when their writers are known dead.

    After Ctrl-C stopped a Ray pool, a worker killed between writing and
    renaming leaves `.NAME.XXXX.part` beside its target; no run is writing
    those targets any more, so they go at once rather than after `STALE_AFTER_S`.
    A plan sweeps its own targets' with `older_than=STALE_AFTER_S` (another run
    may be writing them). Only the targets' own folders are looked at, never
    their sub-folders, and no other `.part` file is touched: the output folder
    may be the input folder, holding the user's own. Returns the removed files.
    """
    by_folder: dict[Location, set[str]] = {}
    for target in map(Location.of, targets):
        by_folder.setdefault(target.parent, set()).add(target.name)
    now = time.time() if now is None else now
    removed = []
    for folder, names in by_folder.items():
        if not folder.is_dir():
            continue
        for rel in folder.list_files(recursive=False):
            match = TEMPORARY_OF.match(rel)
            if match is None or match["target"] not in names:
                continue
            temporary = folder / rel
            modified = temporary.modified()
            if older_than > 0 and modified is not None and now - modified < older_than:
                continue
            try:
                temporary.remove()
                removed.append(str(temporary))
            except (FileNotFoundError, OSError):  # another run swept it first
                pass
    return removed
