"""Known checkpoints and their verified download into the Hugging Face cache.

Every checkpoint is pinned to a commit *and* to the sha256 of the file, and we
check that digest ourselves: a moved branch, a truncated cache entry or a
mirror serving other bytes must never reach the model loaders. This module
only moves and checks bytes; it never deserialises a checkpoint.

Files live in the standard HF hub cache layout, so a checkpoint fetched here
is shared with `transformers` and `huggingface-cli`, and vice versa.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import socket
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from huggingface_hub import constants, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from tqdm.auto import tqdm

from lowlight_cli.errors import Setting, WeightsError
from lowlight_cli.io.atomic import write_bytes
from lowlight_cli.storage import user_cache_dir

# huggingface_hub retries an unreachable host for ~20 s; one TCP connect this
# long (DNS included) is enough to tell "offline" apart from "slow".
PROBE_TIMEOUT_S = 0.5
_HASH_CHUNK = 1 << 20
STAMP_MIN_AGE_NS = 5 * 10**9


@dataclass(frozen=True)
class KnownCheckpoint:
    """A checkpoint we know how to fetch, pinned by commit and content digest."""

    name: str
    kind: str  # "sam" or "denoiser"
    repo_id: str  # "" for the model bundled with the package (nothing to download)
    revision: str  # 40-hex commit: a branch could move under us
    filename: str
    sha256: str  # checked by us after every download and cache hit
    size: int | None  # bytes, when known: a cheap first check before hashing
    licence: str
    description: str


# Where the pins come from (no network here, so read from published pages):
# - revision: HEAD of `main` on https://huggingface.co/facebook/<repo>/tree/main
#   (70c1a07 / 6851e04 / 87aecf0, each a README-only commit after model.safetensors
#   was added); full hashes as recorded from the HF model API by projects pinning them.
# - sha256: the "Git LFS Details" SHA256 on
#   https://huggingface.co/facebook/<repo>/blob/main/model.safetensors; each
#   revision+digest pair also appears together in independent projects.
# - size: only sam-vit-base's byte count (374,979,480) was found in two sources;
#   the others rely on the digest alone.
REGISTRY: dict[str, KnownCheckpoint] = {
    entry.name: entry
    for entry in (
        KnownCheckpoint(
            name="sam-vit-b",
            kind="sam",
            repo_id="facebook/sam-vit-base",
            revision="70c1a07f894ebb5b307fd9eaaee97b9dfc16068f",
            filename="model.safetensors",
            sha256="892c410e496344e527255ccdcb2cb7244a609acb5389c7c4fdba1288f861c579",
            size=374_979_480,
            licence="Apache-2.0",
            description="Segment Anything ViT-B, 375 MB",
        ),
        KnownCheckpoint(
            name="sam-vit-l",
            kind="sam",
            repo_id="facebook/sam-vit-large",
            revision="6851e0441005b0fb96f2cc4dfac472f3d1b14af1",
            filename="model.safetensors",
            sha256="a57e1b13cd1545938dfcbc9fb26df7f60de6650237a9383382a874a623564b81",
            size=None,
            licence="Apache-2.0",
            description="Segment Anything ViT-L, 1.25 GB",
        ),
        KnownCheckpoint(
            name="sam-vit-h",
            kind="sam",
            repo_id="facebook/sam-vit-huge",
            revision="87aecf0df4ce6b30cd7de76e87673c49644bdf67",
            filename="model.safetensors",
            sha256="edfb0462392541fca9af44ff039bfb32dbd0c939997f3abb77a26e23af7afd7c",
            size=None,
            licence="Apache-2.0",
            description="Segment Anything ViT-H, 2.56 GB",
        ),
    )
}


def _transport_errors() -> tuple[type[Exception], ...]:
    """Network failures huggingface_hub lets through, whichever HTTP client it uses.

    The pinned range spans requests (errors are OSErrors), httpx and httpx2
    (errors are not), so the list is built from what is installed.
    """
    errors: list[type[Exception]] = [OSError]
    for module in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(module).HTTPError)
        except ImportError:
            pass
    return tuple(errors)


_TRANSPORT_ERRORS = _transport_errors()


class _QuietBar(tqdm):
    """A progress bar that never draws: hf_hub_download shows one unless told otherwise."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs["disable"] = True
        super().__init__(*args, **kwargs)


def cache_dir() -> Path:
    """The standard HF hub cache (`HF_HUB_CACHE`, else derived from `HF_HOME`).

    huggingface_hub reads these variables once, at import; `HF_HUB_CACHE` is
    read again here so that setting it later (a test, a wrapper) is honoured.
    """
    return Path(os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE).expanduser()


def verify_sha256(path: Path, expected: str) -> bool:
    """Whether the file's sha256 is `expected` (hex, any case)."""
    return _file_sha256(path) == expected.lower()


def find_cached(name: str, *, cache_dir: Path | None = None) -> Path | None:
    """The verified cached file for `name`, or None; never touches the network."""
    entry = _hub_checkpoint(name)
    path = _cached_file(entry, _cache_root(cache_dir))
    return path if path is not None and _is_intact(path, entry) else None


def fetch_checkpoint(
    name: str,
    *,
    endpoint: str | None = None,
    cache_dir: Path | None = None,
    local_only: bool = False,
    progress: bool = False,
) -> Path:
    """The verified local file for `name`, downloading it into the HF cache if needed.

    A good cached copy is returned without any network access. A cached copy
    failing its checksum is discarded and fetched again (or reported when
    downloads are off). Every failure is a one-line `WeightsError`.
    """
    entry = _hub_checkpoint(name)
    root = _cache_root(cache_dir)
    offline = local_only or _offline_mode()
    cached = _cached_file(entry, root)
    if cached is not None:
        if _is_intact(cached, entry):
            return cached
        if offline:
            raise WeightsError(
                f"cached {name} at {cached} fails its sha256 check and downloads are disabled; "
                f"delete it and run `lowlight models download {name}` with network"
            )
        _evict(cached)
    elif offline:
        raise WeightsError(
            f"{name} is not in the cache ({root}) and downloads are disabled; "
            f"run `lowlight models download {name}` on a machine with network, "
            "or pass ",
            Setting("sam_checkpoint"),
            " PATH",
        )

    # HF_ENDPOINT is read now, not at import: a mirror set after start-up (or by a test) still applies.
    endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")
    _require_reachable(endpoint)
    path = _download(entry, root, endpoint, progress)
    actual = _file_sha256(path)
    if actual != entry.sha256.lower():
        _evict(path)
        raise WeightsError(
            f"{name} from {endpoint} has sha256 {actual[:12]}…, expected {entry.sha256[:12]}…; the download was deleted"
        )
    return path


def _hub_checkpoint(name: str) -> KnownCheckpoint:
    """The registry entry for `name`, if it is one that lives on the Hub."""
    entry = REGISTRY.get(name)
    if entry is None:
        raise WeightsError(f"unknown checkpoint '{name}' (known: {', '.join(sorted(REGISTRY))})")
    if not entry.repo_id:
        raise WeightsError(f"{name} ships inside lowlight-cli; there is nothing to download or cache")
    return entry


def _cache_root(explicit: Path | None) -> Path:
    """`explicit` or the standard cache (keeps the `cache_dir` parameter from hiding `cache_dir()`)."""
    return Path(explicit) if explicit is not None else cache_dir()


def _offline_mode() -> bool:
    """`HF_HUB_OFFLINE`, re-read for the same reason as in `cache_dir()`."""
    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    return constants.HF_HUB_OFFLINE or flag in {"1", "ON", "YES", "TRUE"}


def _cached_file(entry: KnownCheckpoint, root: Path) -> Path | None:
    """The snapshot path of the pinned file in the cache, unverified, or None."""
    try:
        return Path(
            hf_hub_download(
                entry.repo_id, entry.filename, revision=entry.revision, cache_dir=root, local_files_only=True
            )
        )
    except LocalEntryNotFoundError:
        return None


def _is_intact(path: Path, entry: KnownCheckpoint) -> bool:
    """Size first (free, catches truncation), then the digest, unless a stamp says this very file passed.

    Hashing vit_h takes seconds, and every `enhance` would pay it again; the
    stamp records (file, size, mtime) after a full check, so any rewrite of
    the file, which changes its mtime, brings the full check back. As in
    git's index, a file modified in the last few seconds is not stamped: a
    rewrite within the filesystem's timestamp granularity would keep its mtime.
    """
    blob = path.resolve()
    stat = blob.stat()
    if entry.size is not None and stat.st_size != entry.size:
        return False
    stamp = _stamp_path(entry.sha256)
    identity = f"{blob}|{stat.st_size}|{stat.st_mtime_ns}"
    try:
        if stamp.read_text() == identity:
            return True
    except OSError:
        pass
    if not verify_sha256(path, entry.sha256):
        return False
    if time.time_ns() - stat.st_mtime_ns < STAMP_MIN_AGE_NS:
        return True
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(stamp, identity.encode(), fsync=False)  # a concurrent reader never sees half a stamp
    except OSError:
        pass  # a read-only cache only costs the next run another full check
    return True


def _stamp_path(sha256: str) -> Path:
    """Where the verification stamp of the checkpoint with this digest lives (our cache, not the HF one)."""
    return user_cache_dir() / "verified" / sha256.lower()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _evict(snapshot_path: Path) -> None:
    """Delete a cached file: its snapshot link and the blob behind it.

    Removing only the link would let hf_hub_download relink the bad blob;
    removing only the blob would leave a link it still trusts for a pinned commit.
    """
    blob = snapshot_path.resolve()
    snapshot_path.unlink(missing_ok=True)
    blob.unlink(missing_ok=True)


def _require_reachable(endpoint: str) -> None:
    """Fail in well under a second when the endpoint (or the proxy to it) does not answer."""
    host, port = _connect_target(endpoint)
    problem = _tcp_probe(host, port, PROBE_TIMEOUT_S)
    if problem is not None:
        raise WeightsError(
            f"cannot reach {endpoint} ({problem}); check the network, or use a cached or local checkpoint"
        )


def _connect_target(endpoint: str) -> tuple[str, int]:
    """Where a download would actually connect: the endpoint, or its proxy if one applies."""
    parts = urlsplit(endpoint)
    if not parts.hostname:
        raise WeightsError(f"invalid endpoint '{endpoint}' (expected e.g. https://huggingface.co)")
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if proxy and not urllib.request.proxy_bypass(parts.hostname):
        parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    default_port = 443 if parts.scheme == "https" else 80
    return parts.hostname or "", parts.port or default_port


def _tcp_probe(host: str, port: int, timeout: float) -> str | None:
    """Why a TCP connection to host:port cannot be opened within `timeout`, or None if it can.

    Runs in a thread because name resolution has no timeout of its own.
    """
    outcome: list[str | None] = []

    def attempt() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except OSError as exc:
            outcome.append(exc.strerror or str(exc) or type(exc).__name__)

    worker = threading.Thread(target=attempt, name="lowlight-endpoint-probe", daemon=True)
    worker.start()
    worker.join(timeout)
    return outcome[0] if outcome else f"no answer within {timeout:g} s"


def _download(entry: KnownCheckpoint, root: Path, endpoint: str, progress: bool) -> Path:
    """hf_hub_download of the pinned file, with its errors turned into one-line WeightsErrors."""
    where = f"{entry.repo_id}@{entry.revision[:12]} on {endpoint}"
    try:
        return Path(
            hf_hub_download(
                entry.repo_id,
                entry.filename,
                revision=entry.revision,
                cache_dir=root,
                endpoint=endpoint,
                token=False,  # the registry lists public repos only: never send a token to a mirror
                tqdm_class=None if progress else _QuietBar,
            )
        )
    except RepositoryNotFoundError as exc:
        raise WeightsError(f"repository {entry.repo_id} not found on {endpoint} (or it is private)") from exc
    except RevisionNotFoundError as exc:
        raise WeightsError(f"revision {entry.revision[:12]} of {entry.repo_id} not found on {endpoint}") from exc
    except LocalEntryNotFoundError as exc:  # the Hub could not be asked; the cause says why
        raise WeightsError(f"cannot download {entry.filename} from {where}: {_one_line(exc.__cause__ or exc)}") from exc
    except EntryNotFoundError as exc:
        raise WeightsError(f"{entry.filename} not found in {where}") from exc
    except _TRANSPORT_ERRORS as exc:
        raise WeightsError(f"downloading {entry.filename} from {where} failed: {_one_line(exc)}") from exc


def _one_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (hub errors span several)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
