"""Checkpoint download and cache checks, against a loopback Hub.

The real `hf_hub_download` talks to `tests.hub_server.FakeHub` over HTTP, so
these tests cover the cache layout, headers and error codes huggingface_hub
actually sees, with tiny safetensors files instead of SAM's gigabytes.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import constants
from safetensors.numpy import save

from lowlight_cli.checkpoints import hub as checkpoint_hub
from lowlight_cli.errors import WeightsError
from lowlight_cli.settings.names import SAM_SIZES
from tests.hub_server import FakeHub

SHIPPED_REGISTRY = dict(checkpoint_hub.REGISTRY)  # captured before any test swaps it out

NAME = "tiny-sam"
REPO = "lowlight-tests/tiny-sam"
REVISION = "0123456789abcdef0123456789abcdef01234567"
FILENAME = "model.safetensors"
FAST_S = 1.0  # "fails fast" and "served from cache" both mean well under this


def _safetensors(fill: float) -> bytes:
    return save({"weight": np.full((32, 32), fill, dtype=np.float32)})  # ~4 KB


GOOD = _safetensors(1.0)
OTHER = _safetensors(2.0)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(autouse=True)
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private HF cache and a one-entry registry; no real cache, offline flag or proxy leaks in."""
    root = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    entry = checkpoint_hub.KnownCheckpoint(
        name=NAME,
        kind="sam",
        repo_id=REPO,
        revision=REVISION,
        filename=FILENAME,
        sha256=_sha(GOOD),
        size=len(GOOD),
        licence="Apache-2.0",
        description="tiny test checkpoint",
    )
    monkeypatch.setattr(checkpoint_hub, "REGISTRY", {NAME: entry})
    return root


@pytest.fixture
def hub():
    """A running fake Hub serving GOOD as the pinned file."""
    server = FakeHub()
    server.add(REPO, REVISION, FILENAME, GOOD)
    with server:
        yield server


def _closed_port_endpoint() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there once the socket is closed


def _timed(call):
    start = time.monotonic()
    result = call()
    return result, time.monotonic() - start


def test_shipped_registry_pins_every_sam_checkpoint():
    sam_names = {size.checkpoint for size in SAM_SIZES.values()}
    assert sam_names == {name for name, entry in SHIPPED_REGISTRY.items() if entry.kind == "sam"}
    for name, entry in SHIPPED_REGISTRY.items():
        assert entry.name == name
        assert re.fullmatch(r"[0-9a-f]{40}", entry.revision), name
        assert re.fullmatch(r"[0-9a-f]{64}", entry.sha256), name
    sam_repos = {SHIPPED_REGISTRY[name].repo_id for name in sam_names}
    assert sam_repos == {"facebook/sam-vit-base", "facebook/sam-vit-large", "facebook/sam-vit-huge"}


def test_cache_dir_follows_hf_hub_cache(hub_cache: Path):
    assert checkpoint_hub.cache_dir() == hub_cache


def test_download_lands_in_hf_cache_layout_and_second_call_needs_no_server(hub: FakeHub, hub_cache: Path):
    path = checkpoint_hub.fetch_checkpoint(NAME, endpoint=hub.endpoint)

    assert path == hub_cache / "models--lowlight-tests--tiny-sam" / "snapshots" / REVISION / FILENAME
    assert path.resolve() == hub_cache / "models--lowlight-tests--tiny-sam" / "blobs" / _sha(GOOD)
    assert path.read_bytes() == GOOD
    assert checkpoint_hub.find_cached(NAME) == path
    assert hub.count("GET") == 1

    endpoint = hub.endpoint
    hub.stop()
    again, elapsed = _timed(lambda: checkpoint_hub.fetch_checkpoint(NAME, endpoint=endpoint))
    assert again == path
    assert elapsed < FAST_S


def test_explicit_cache_dir_wins_over_environment(hub: FakeHub, tmp_path: Path, hub_cache: Path):
    elsewhere = tmp_path / "elsewhere"
    path = checkpoint_hub.fetch_checkpoint(NAME, endpoint=hub.endpoint, cache_dir=elsewhere)
    assert path.is_relative_to(elsewhere)
    assert checkpoint_hub.find_cached(NAME, cache_dir=elsewhere) == path
    assert checkpoint_hub.find_cached(NAME) is None  # nothing went to the default cache


def test_checksum_mismatch_deletes_the_download(hub_cache: Path):
    with FakeHub() as lying_hub:
        lying_hub.add(REPO, REVISION, FILENAME, OTHER)
        with pytest.raises(WeightsError, match="sha256") as caught:
            checkpoint_hub.fetch_checkpoint(NAME, endpoint=lying_hub.endpoint)

    message = str(caught.value)
    assert _sha(OTHER)[:12] in message and _sha(GOOD)[:12] in message
    assert "\n" not in message
    assert checkpoint_hub.find_cached(NAME) is None
    leftovers = [p for p in hub_cache.rglob("*") if p.is_file() and p.parent.name in {"blobs", REVISION}]
    assert leftovers == []


def test_offline_with_cache_is_served_fast(hub: FakeHub, monkeypatch: pytest.MonkeyPatch):
    path = checkpoint_hub.fetch_checkpoint(NAME, endpoint=hub.endpoint)
    hub.stop()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    again, elapsed = _timed(lambda: checkpoint_hub.fetch_checkpoint(NAME))
    assert again == path and elapsed < FAST_S
    assert checkpoint_hub.fetch_checkpoint(NAME, local_only=True) == path


@pytest.mark.parametrize("how", ["HF_HUB_OFFLINE", "local_only"])
def test_offline_without_cache_says_how_to_get_it(how: str, monkeypatch: pytest.MonkeyPatch):
    if how == "HF_HUB_OFFLINE":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(WeightsError, match=r"lowlight models download tiny-sam.*sam_checkpoint PATH"):
        checkpoint_hub.fetch_checkpoint(NAME, endpoint=_closed_port_endpoint(), local_only=(how == "local_only"))
    assert time.monotonic() - start < FAST_S


def test_unreachable_endpoint_fails_fast():
    endpoint = _closed_port_endpoint()
    start = time.monotonic()
    with pytest.raises(WeightsError, match=f"cannot reach {re.escape(endpoint)}"):
        checkpoint_hub.fetch_checkpoint(NAME, endpoint=endpoint)
    assert time.monotonic() - start < FAST_S


@pytest.mark.parametrize(
    ("served", "expected"),
    [
        ((("someone/else", REVISION, FILENAME),), "repository lowlight-tests/tiny-sam not found"),
        (((REPO, "f" * 40, FILENAME),), "revision 0123456789ab of lowlight-tests/tiny-sam not found"),
        (((REPO, REVISION, "other.safetensors"),), "model.safetensors not found in lowlight-tests/tiny-sam@"),
    ],
    ids=["repo", "revision", "file"],
)
def test_not_found_is_a_one_line_weights_error(served, expected: str):
    with FakeHub() as sparse_hub:
        for repo_id, revision, filename in served:
            sparse_hub.add(repo_id, revision, filename, GOOD)
        with pytest.raises(WeightsError, match=re.escape(expected)) as caught:
            checkpoint_hub.fetch_checkpoint(NAME, endpoint=sparse_hub.endpoint)
    assert "\n" not in str(caught.value)
    assert checkpoint_hub.find_cached(NAME) is None


@pytest.mark.parametrize("damage", ["truncated", "bit flip"])
def test_corrupted_cache_is_detected_and_downloaded_again(damage: str, hub: FakeHub):
    path = checkpoint_hub.fetch_checkpoint(NAME, endpoint=hub.endpoint)
    broken = GOOD[:100] if damage == "truncated" else GOOD[:-1] + bytes([GOOD[-1] ^ 1])
    path.resolve().write_bytes(broken)

    assert checkpoint_hub.find_cached(NAME) is None
    again = checkpoint_hub.fetch_checkpoint(NAME, endpoint=hub.endpoint)
    assert again == path and again.read_bytes() == GOOD
    assert hub.count("GET") == 2


def test_corrupted_cache_without_network_is_reported(hub: FakeHub):
    path = checkpoint_hub.fetch_checkpoint(NAME, endpoint=hub.endpoint)
    path.resolve().write_bytes(OTHER)
    with pytest.raises(WeightsError, match="fails its sha256 check"):
        checkpoint_hub.fetch_checkpoint(NAME, local_only=True)


def test_verified_file_is_not_hashed_again_until_it_changes(hub: FakeHub, monkeypatch: pytest.MonkeyPatch):
    path = checkpoint_hub.fetch_checkpoint(NAME, endpoint=hub.endpoint)
    blob = path.resolve()
    old = time.time_ns() - 60 * 10**9
    os.utime(blob, ns=(old, old))  # downloaded a minute ago: old enough to stamp
    hashed = []
    real_hash = checkpoint_hub._file_sha256
    monkeypatch.setattr(checkpoint_hub, "_file_sha256", lambda p: hashed.append(p) or real_hash(p))

    assert checkpoint_hub.find_cached(NAME) == path and len(hashed) == 1
    assert checkpoint_hub.find_cached(NAME) == path and len(hashed) == 1  # the stamp answered
    blob.write_bytes(GOOD[:-1] + bytes([GOOD[-1] ^ 1]))  # same size, new content and mtime
    assert checkpoint_hub.find_cached(NAME) is None and len(hashed) == 2


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(WeightsError, match="unknown checkpoint 'sam-vit-z'.*tiny-sam"):
        checkpoint_hub.fetch_checkpoint("sam-vit-z")
    with pytest.raises(WeightsError, match="unknown checkpoint"):
        checkpoint_hub.find_cached("sam-vit-z")


def test_bundled_checkpoint_is_not_downloadable(monkeypatch: pytest.MonkeyPatch):
    bundled = checkpoint_hub.KnownCheckpoint(
        name="default",
        kind="denoiser",
        repo_id="",
        revision="0" * 40,
        filename="default.safetensors",
        sha256="0" * 64,
        size=None,
        licence="Apache-2.0",
        description="bundled",
    )
    monkeypatch.setitem(checkpoint_hub.REGISTRY, "default", bundled)
    with pytest.raises(WeightsError, match="ships inside"):
        checkpoint_hub.fetch_checkpoint("default")


def test_verify_sha256(tmp_path: Path):
    file = tmp_path / "w.safetensors"
    file.write_bytes(GOOD)
    assert checkpoint_hub.verify_sha256(file, _sha(GOOD).upper())
    assert not checkpoint_hub.verify_sha256(file, _sha(OTHER))


def test_reachability_probe_goes_to_the_proxy_when_one_applies(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert checkpoint_hub._connect_target("https://huggingface.co") == ("proxy.internal", 3128)
    monkeypatch.setenv("NO_PROXY", "huggingface.co")
    assert checkpoint_hub._connect_target("https://huggingface.co") == ("huggingface.co", 443)
