"""Reaching a Ray cluster for `--ray`: the options, `ray.init` with Ray's order of addresses, the pool's size.

Ray is imported only here and in `ray_executor`, and only when `--ray` is
given: without the `[ray]` extra everything else works as before. Variables
set after a cluster started never reach its workers, so the driver's
storage, cache and lowlight settings (`FORWARDED_ENV`) travel in the
actors' runtime_env.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lowlight_cli.errors import LowlightError, Setting, UsageError

FORWARDED_ENV = (
    "AWS_",
    "GOOGLE_",
    "GCLOUD_",
    "CLOUDSDK_",
    "AZURE_",
    "FSSPEC_",
    "LOWLIGHT_",
    "HF_",
    "HUGGING",
    "XDG_CACHE_HOME",
    "PYTORCH_",
)
RAY_EXTRA = 'pip install "lowlight-cli[ray]"'
# The cluster's options, as errors name them (the CLI words them `--ray`, `--workers`, ...).
RAY, WORKERS, GPUS, DEVICE = Setting("ray"), Setting("workers"), Setting("gpus_per_worker"), Setting("device")


@dataclass(frozen=True)
class RayOptions:
    """`--ray [ADDRESS|auto]`, `--workers`, `--gpus-per-worker`, `--cpus-per-worker`."""

    address: str | None = None  # None: Ray's own order (RAY_ADDRESS, a running `ray start`, else a local cluster)
    workers: tuple[int, int] | None = None  # (min, max) actors; None: as many as the cluster holds
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0


def parse_workers(text: str | None) -> tuple[int, int] | None:
    """`N` → (N, N); `MIN,MAX` → an autoscaling pool; anything else is a one-line `UsageError`."""
    if text is None:
        return None
    parts = [part.strip() for part in str(text).split(",")]
    try:
        numbers = [int(part) for part in parts]
    except ValueError:
        numbers = []
    if len(numbers) not in (1, 2) or min(numbers) < 1 or numbers[0] > numbers[-1]:
        raise UsageError(WORKERS, f" {text}: give N or MIN,MAX with 1 <= MIN <= MAX")
    return numbers[0], numbers[-1]


def check_options(options: RayOptions, device: str) -> None:
    if options.cpus_per_worker <= 0:
        raise UsageError(Setting("cpus_per_worker"), f" must be more than 0, got {options.cpus_per_worker:g}")
    if options.gpus_per_worker < 0:
        raise UsageError(GPUS, f" must be at least 0, got {options.gpus_per_worker:g}")
    if device == "cuda" and options.gpus_per_worker == 0:
        raise UsageError(DEVICE, " cuda with ", RAY, " needs ", GPUS, " (Ray gives a worker no GPU otherwise)")
    if device == "mps":
        raise UsageError(DEVICE, " mps does not work in Ray workers; use ", DEVICE, " cpu or auto")


def forwarded_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key.startswith(FORWARDED_ENV)}


def import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UsageError(RAY, f" needs Ray: {RAY_EXTRA}") from None
    return ray


@dataclass
class Cluster:
    ray: Any
    started_here: bool  # we started a local cluster (and stop it at the end)
    connected_here: bool  # we called ray.init (and call ray.shutdown at the end)
    cpus: float = 0.0
    gpus: float = 0.0


@contextlib.contextmanager
def native_stderr_to_null(enabled: bool) -> Iterator[None]:
    """Silence what Ray's C++ core prints on this process's stderr while it starts (its log-level notice);
    its errors still arrive as Python exceptions, and `-v` shows everything."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def connect(address: str | None, verbose: bool = False) -> Cluster:
    """`ray.init` with Ray's own precedence; an unreachable cluster is one line.

    No address: RAY_ADDRESS, else the cluster of a running `ray start` on
    this machine, else a new local cluster sized to this machine. `auto`:
    the same, but an error instead of a new cluster. An address: that one.
    A Ray already initialised in this process (a notebook, the tests) is used as it is.
    """
    ray = import_ray()
    quiet = logging.INFO if verbose else logging.ERROR
    logging.getLogger("ray").setLevel(quiet)
    logging.getLogger("ray.data").setLevel(quiet)
    if ray.is_initialized():
        cluster = Cluster(ray, started_here=False, connected_here=False)
    else:
        if not verbose:  # the C++ core worker's own lines (e.g. about actor constructor arguments)
            os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
        existing = (
            address is not None
            or bool(os.environ.get("RAY_ADDRESS"))
            or Path(tempfile.gettempdir(), "ray", "ray_current_cluster").exists()
        )
        try:
            with native_stderr_to_null(not verbose):
                ray.init(
                    address=address,
                    logging_level=quiet,
                    log_to_driver=verbose,
                    configure_logging=True,
                    **({} if existing else {"include_dashboard": False}),
                )
        except ConnectionError as exc:
            if address == "auto" and not os.environ.get("RAY_ADDRESS"):
                raise LowlightError(
                    RAY,
                    " auto: no running Ray cluster found (start one with `ray start --head`, set RAY_ADDRESS, or give ",
                    RAY,
                    " alone for a local cluster)",
                ) from None
            raise LowlightError(
                RAY, f" {address or os.environ.get('RAY_ADDRESS', '')}: no Ray cluster reachable ({exc})"
            ) from None
        except (ValueError, RuntimeError) as exc:
            raise LowlightError(RAY, f" {address or ''}: cannot start or join Ray: {exc}") from None
        cluster = Cluster(ray, started_here=not existing, connected_here=True)
    resources = ray.cluster_resources()
    cluster.cpus, cluster.gpus = float(resources.get("CPU", 0)), float(resources.get("GPU", 0))
    return cluster


def pool_size(options: RayOptions, cluster: Cluster, files: int, notify: Callable[[str], None]) -> tuple[int, int]:
    """(min, max) actors: `--workers`, else as many as the cluster's CPUs (or GPUs) hold, never more than files.

    A pool whose minimum the cluster cannot hold would wait forever: on a
    cluster we started that is an error; on one we joined, the autoscaler
    may add nodes, so it is a note.
    """
    if options.gpus_per_worker > 0:
        fits = int(cluster.gpus // options.gpus_per_worker)
    else:
        fits = int(cluster.cpus // options.cpus_per_worker)
    low, high = options.workers or (max(1, min(fits, files)), max(1, min(fits, files)))
    high = min(high, max(files, 1))
    low = min(low, high)
    need_cpu, need_gpu = low * options.cpus_per_worker, low * options.gpus_per_worker
    if need_cpu > cluster.cpus or need_gpu > cluster.gpus:
        message = (
            f"{low} worker(s) × {options.cpus_per_worker:g} CPU, {options.gpus_per_worker:g} GPU need "
            f"{need_cpu:g} CPU and {need_gpu:g} GPU; the cluster has {cluster.cpus:g} CPU and "
            f"{cluster.gpus:g} GPU"
        )
        if cluster.started_here or (not options.workers and fits == 0):
            raise UsageError(f"{message} (lower ", WORKERS, " or the per-worker share)")
        notify(f"{message}: waiting for the cluster to grow")
    return low, high
