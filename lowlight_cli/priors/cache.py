"""The prior cache: region priors on disk, keyed by content.

SAM costs seconds per image on a CPU; a prior depends only on the working
image and the producer, so re-running an image, or sweeping `--steps`,
pays for it once. Used by `priors/sam.py`; an optimisation only, never a
reason for a run to fail.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from lowlight_cli.io.atomic import atomic_path
from lowlight_cli.priors.region_prior import RegionPrior
from lowlight_cli.storage import user_cache_dir

PRIOR_CACHE_ENV = "LOWLIGHT_PRIOR_CACHE"
PRIOR_CACHE_SIZE_ENV = "LOWLIGHT_PRIOR_CACHE_MB"
DEFAULT_PRIOR_CACHE_MB = 1024
_CACHE_FORMAT = 1  # bump when the stored arrays or the producer's output change meaning


def default_cache_dir() -> Path:
    override = os.environ.get(PRIOR_CACHE_ENV)
    if override:
        return Path(override).expanduser()
    return user_cache_dir() / "priors"


def cache_limit_bytes() -> int:
    """$LOWLIGHT_PRIOR_CACHE_MB in bytes; an unparsable value means the default, not a failed run."""
    try:
        megabytes = float(os.environ.get(PRIOR_CACHE_SIZE_ENV) or DEFAULT_PRIOR_CACHE_MB)
    except ValueError:
        megabytes = DEFAULT_PRIOR_CACHE_MB
    return int(max(0.0, megabytes) * 2**20)


class PriorCache:
    """RegionPriors on disk, keyed by sha256 of (image content, producer identity, working size).

    One compressed `.npz` per prior (labels int32, scores float32, boundary float32, source), read
    with `allow_pickle=False`. The cache is an optimisation only: unreadable entries are misses and
    an unwritable folder disables writing, never the run.
    Folder: `root`, else $LOWLIGHT_PRIOR_CACHE, else $XDG_CACHE_HOME or ~/.cache, + lowlight-cli/priors.
    Size: at most `max_bytes` (default 1 GiB, or $LOWLIGHT_PRIOR_CACHE_MB); past it, the least
    recently used entries go first (a hit refreshes an entry's mtime).
    """

    def __init__(self, root: Path | str | None = None, max_bytes: int | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        self.max_bytes = max_bytes if max_bytes is not None else cache_limit_bytes()
        self.hits = 0
        self.misses = 0
        self.writable = True

    @staticmethod
    def key(data: bytes | np.ndarray, producer: str, size: tuple[int, int]) -> str:
        """Hex key for an input given as file bytes or as an array (dtype and shape included)."""
        digest = hashlib.sha256()
        digest.update(f"lowlight-prior/{_CACHE_FORMAT}|{producer}|{int(size[0])}x{int(size[1])}|".encode())
        if isinstance(data, np.ndarray):
            array = np.ascontiguousarray(data)
            digest.update(f"{array.dtype.str}{array.shape}|".encode())
            digest.update(array.view(np.uint8).reshape(-1).data if array.size else b"")
        else:
            digest.update(b"bytes|")
            digest.update(bytes(data))
        return digest.hexdigest()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def get(self, key: str) -> RegionPrior | None:
        path = self.path(key)
        try:
            with np.load(path, allow_pickle=False) as stored:
                labels = stored["labels"].astype(np.int32, copy=False)
                scores = stored["scores"].astype(np.float32, copy=False)
                boundary = stored["boundary"].astype(np.float32, copy=False)
                source = str(stored["source"])
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, zlib.error):
            self.misses += 1
            return None
        if (
            labels.ndim != 2
            or boundary.shape != labels.shape
            or scores.ndim != 1
            or (labels.size and int(labels.max()) > scores.shape[0])
        ):
            self.misses += 1
            return None
        self.hits += 1
        try:
            os.utime(path)  # recently used: last to be evicted
        except OSError:
            pass
        return RegionPrior(labels=labels, scores=scores, boundary=boundary, source=source)

    def put(self, key: str, prior: RegionPrior) -> None:
        if not self.writable:
            return
        path = self.path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with (
                atomic_path(path, suffix=".npz", fsync=False) as temp,
                open(temp, "wb") as file,
            ):  # readers never see half a file
                np.savez_compressed(
                    file,
                    labels=prior.labels.astype(np.int32),
                    scores=prior.scores.astype(np.float32),
                    boundary=prior.boundary.astype(np.float32),
                    source=np.array(prior.source),
                )
        except OSError:
            self.writable = False
            return
        self.trim()

    def trim(self) -> None:
        """Delete least recently used entries until the cache is within 90% of `max_bytes`.

        A listing per write costs milliseconds against the seconds SAM took to make the entry.
        """
        entries = []
        for path in self.root.glob("*/*.npz"):
            try:
                stat = path.stat()
            except OSError:  # removed by a concurrent run
                continue
            entries.append((stat.st_mtime_ns, stat.st_size, path))
        total = sum(size for _, size, _ in entries)
        if total <= self.max_bytes:
            return
        for _, size, path in sorted(entries):
            path.unlink(missing_ok=True)
            total -= size
            if total <= 0.9 * self.max_bytes:
                break
