"""`batch --ray`: the same batch fanned out over a Ray cluster with Ray Data's actor pool.

How a run goes, and why:

* **The driver plans, the cluster works.** The driver lists the inputs
  (on disk or in a bucket), skips finished outputs and checks every option
  and the model itself (`check_settings`) *before* Ray starts, so a bad
  `--model` is one line, not pages of `ActorDiedError`. Only file names go
  into Ray Data's blocks: no read tasks exist to be starved of CPU by an
  actor pool that takes every core, and no decoded image ever meets Arrow's
  2 GB block limit.
* **Each actor builds its own `Enhancer`** from the checkpoint's bytes (a
  loaded model is never shipped), sets torch's threads to its CPU share,
  then per file: reads the bytes, decodes, enhances, re-checks that the
  output is still missing, writes atomically (`storage.Location`), and
  returns a row — done, skipped or failed with the reason. A bad file is a
  row, never a failed job.
* **A dead worker is replaced.** Ray restarts the actor and retries its
  block; a file whose output this run already wrote is not written again
  (its output's time is at or after the run's start), and a write is never
  seen half-done. A file that kills its worker `TASK_RETRIES + 1` times is
  reported failed.
* **Environment reaches the workers.** Variables set after a cluster
  started never reach its workers, so the driver's storage, cache and
  lowlight settings (`FORWARDED_ENV`) travel in the actors' runtime_env.
* Ray's own progress bars and logs are off; the caller draws one progress
  bar per file.

Ray is imported only here and only when `--ray` is given: without the
`[ray]` extra everything else works as before.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from lowlight_cli.errors import LowlightError, UsageError
from lowlight_cli.jobs import Job, JobReport, triage
from lowlight_cli.settings import EnhanceSettings
from lowlight_cli.storage import Location, sweep_temporaries_of

if TYPE_CHECKING:
    from lowlight_cli.pipeline import Enhancer

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
TASK_RETRIES = 3  # a file that kills its worker this many times more is reported failed, not retried forever
MAX_BLOCKS = 2000  # one file per block up to this many files (finest retries); more files share blocks
RAY_EXTRA = 'pip install "lowlight-cli[ray]"'


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
        raise UsageError(f"--workers {text}: give N or MIN,MAX with 1 <= MIN <= MAX")
    return numbers[0], numbers[-1]


def check_options(options: RayOptions, device: str) -> None:
    if options.cpus_per_worker <= 0:
        raise UsageError(f"--cpus-per-worker must be more than 0, got {options.cpus_per_worker:g}")
    if options.gpus_per_worker < 0:
        raise UsageError(f"--gpus-per-worker must be at least 0, got {options.gpus_per_worker:g}")
    if device == "cuda" and options.gpus_per_worker == 0:
        raise UsageError("--device cuda with --ray needs --gpus-per-worker (Ray gives a worker no GPU otherwise)")
    if device == "mps":
        raise UsageError("--device mps does not work in Ray workers; use --device cpu or auto")


def check_settings(settings: EnhanceSettings) -> bytes:
    """Check the model on the driver; return the checkpoint's bytes for the actors.

    `settings` were validated when made; this loads the checkpoint into a CPU
    `Enhancer` without a prior (the denoiser is small: its names and shapes
    are checked), and finds the SAM weights for `--prior sam` (downloading
    them, as the local batch does), so that a bad `--model` is one line here
    rather than a dead actor pool.
    """
    from lowlight_cli.locate import locate_sam_checkpoint, resolve_model_path
    from lowlight_cli.pipeline import Enhancer

    Enhancer(settings=settings.with_changes(device="cpu", prior="none", sam_checkpoint=None))
    if settings.prior == "sam":
        locate_sam_checkpoint(settings.sam_model, settings.sam_checkpoint, download=True)
    return resolve_model_path(settings.model).read_bytes()


@dataclass
class WorkerSpec:
    """What an actor needs to build its own `Enhancer` and run files: no loaded model, only bytes and settings."""

    settings: EnhanceSettings
    model_bytes: bytes
    model_name: str
    overwrite: bool
    quality: int | None
    started: float  # the driver's clock when work began: outputs at or after it were written by this run
    threads: int
    fault: Callable[[str, str], None] | None = None  # tests only: called with (stage, target), may kill the worker
    video: dict[str, Any] | None = None  # `video --ray`: each item is a whole video (start, end, max_frames, smoothing)


class EnhanceWorker:
    """A Ray Data actor: one `Enhancer` per process, then one row per file."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec, self.error, self.enhancer = spec, None, None
        try:
            import torch

            torch.set_num_threads(spec.threads)
            from lowlight_cli.pipeline import Enhancer

            self.scratch = tempfile.mkdtemp(prefix="lowlight-worker-")
            model_path = Path(self.scratch) / "model.safetensors"
            model_path.write_bytes(spec.model_bytes)
            self.enhancer = Enhancer(settings=spec.settings.with_changes(model=str(model_path)))
            self.enhancer.model_name = spec.model_name  # errors about its output name the model the user gave
        except Exception as exc:  # noqa: BLE001 - every file then fails with this line, instead of a dead pool
            self.error = f"worker on {socket.gethostname()} could not load the model: {exc}"

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        rows: dict[str, list] = {"source": [], "target": [], "status": [], "error": [], "seconds": []}
        for source, target in zip(batch["source"], batch["target"], strict=True):
            began = time.perf_counter()
            status, error = self.one(str(source), str(target))
            for key, value in (
                ("source", str(source)),
                ("target", str(target)),
                ("status", status),
                ("error", error),
                ("seconds", time.perf_counter() - began),
            ):
                rows[key].append(value)
        return rows

    def present(self, target: Location) -> str | None:
        """'done' if this run already wrote `target` (a retried block), 'skipped' if it was there before, else None."""
        if not target.exists():
            return None
        modified = target.modified()
        slack = 0.0 if target.local else 1.0  # object stores keep whole seconds
        if modified is not None and modified >= self.spec.started - slack:
            return "done"
        return None if self.spec.overwrite else "skipped"

    def one(self, source: str, target: str) -> tuple[str, str]:
        from lowlight_cli.work import enhance_loaded, load_photo

        if self.error:
            return "failed", f"{source}: {self.error}"
        job = Job(Location.of(source), Location.of(target))
        fault = self.spec.fault or (lambda stage, name: None)
        try:
            state = self.present(cast(Location, job.target))
            if state:
                return state, ""
            if self.spec.video is not None:
                return self.one_video(job, fault)
            photo = load_photo(job.source)
            fault("enhancing", target)
            outcome: list[str] = []

            def still_missing() -> bool:  # the last look before writing: Ray may have run this file elsewhere
                outcome.append(self.present(cast(Location, job.target)) or "")
                return not outcome[-1]

            written = enhance_loaded(
                cast("Enhancer", self.enhancer),  # set unless self.error
                photo.image,
                job.source,
                job.target,
                self.spec.quality,
                photo.quality,
                before_write=still_missing,
            )
            if written is None:
                return outcome[-1], ""
            fault("written", target)
            return "done", ""
        except LowlightError as exc:
            return "failed", str(exc)
        except MemoryError:
            return "failed", f"{source}: out of memory (try a smaller --work-size)"
        except Exception as exc:  # noqa: BLE001 - a per-file bug must not take the job down
            return "failed", f"{source}: unexpected {type(exc).__name__}: {exc}"

    def one_video(self, job: Job, fault: Callable[[str, str], None]) -> tuple[str, str]:
        """A whole video on this worker: its frames depend on each other (one noise field, smoothing, priors per shot).

        The video is encoded into a temporary file beside its target and moved
        into place when complete, so a worker that dies leaves no partial video.
        """
        from lowlight_cli.work import open_video_job

        options = self.spec.video or {}
        with open_video_job(
            cast(Location, job.source).as_path(),  # a Ray job's places are Locations
            cast(Location, job.target).as_path(),
            options.get("start"),
            options.get("end"),
            options.get("max_frames"),
            overwrite=True,
        ) as video:
            fault("enhancing", str(job.target))
            video.run(cast("Enhancer", self.enhancer), smoothing=options.get("smoothing", 0.8))
        fault("written", str(job.target))
        return "done", ""


def actor_retries() -> dict[str, int]:
    """Dead actors are always replaced; a block is retried TASK_RETRIES times (Ray Data's default is forever)."""
    return {"max_restarts": -1, "max_task_retries": TASK_RETRIES}


def forwarded_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key.startswith(FORWARDED_ENV)}


def import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UsageError(f"--ray needs Ray: {RAY_EXTRA}") from None
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
                    "--ray auto: no running Ray cluster found (start one with `ray start --head`, "
                    "set RAY_ADDRESS, or give --ray alone for a local cluster)"
                ) from None
            raise LowlightError(
                f"--ray {address or os.environ.get('RAY_ADDRESS', '')}: no Ray cluster reachable ({exc})"
            ) from None
        except (ValueError, RuntimeError) as exc:
            raise LowlightError(f"--ray {address or ''}: cannot start or join Ray: {exc}") from None
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
            raise UsageError(f"{message} (lower --workers or the per-worker share)")
        notify(f"{message}: waiting for the cluster to grow")
    return low, high


@dataclass
class RayRun:
    """What a Ray batch did beyond the report: for the summary and the benchmark."""

    workers: tuple[int, int] = (0, 0)
    startup_s: float = 0.0  # ray.init and the pool's start, until the first file came back
    seconds: float = 0.0
    per_file_s: list[float] = field(default_factory=list)


def run_ray_batch(
    jobs: list[Job],
    settings: EnhanceSettings,
    options: RayOptions,
    overwrite: bool,
    quality: int | None = None,
    on_advance: Callable[[Job], None] | None = None,
    notify: Callable[[str], None] = lambda message: None,
    verbose: bool = False,
    fault: Callable[[str, str], None] | None = None,
    run: RayRun | None = None,
    video: dict[str, Any] | None = None,
) -> JobReport:
    """Run `jobs` (local or object-storage `Location`s) on a Ray cluster; the same report as the local batch.

    With `video` (start, end, max_frames, smoothing), each job is a whole
    video file, enhanced on one worker (`lowlight video DIR --ray`).

    Jobs are sorted first as the local batch sorts them (`jobs.triage`:
    finished outputs skipped, outputs that are inputs refused), before Ray
    starts; a re-run therefore resumes without a pool when all is done.
    Per-file failures are rows in the report; the job as a whole fails only
    on a problem with the options, the model or the cluster, each raised as
    one line before any work starts.
    """
    run = run or RayRun()
    began = time.perf_counter()
    check_options(options, settings.device)
    pending, report = triage(jobs, overwrite)
    for job in report.skipped + [job for job, _ in report.failed]:
        if on_advance:
            on_advance(job)
    if not pending:
        return report
    model_bytes = check_settings(settings)
    cluster = connect(options.address, verbose)
    try:
        run.workers = pool_size(options, cluster, len(pending), notify)
        spec = WorkerSpec(
            settings=settings,
            model_bytes=model_bytes,
            model_name=settings.model,
            overwrite=overwrite,
            quality=quality,
            started=time.time(),
            threads=max(1, int(options.cpus_per_worker)),
            fault=fault,
            video=video,
        )
        by_target = {str(Location.of(job.target)): job for job in pending}
        rows = iter(start_pool(cluster.ray, by_target, spec, options, run.workers).iter_rows())
        try:
            collect(rows, by_target, report, run, began, on_advance)
        except BaseException:  # Ctrl-C: stop the pool (its actors die), then remove what their writes left
            close = getattr(rows, "close", None)
            if close is not None:
                close()
            if cluster.connected_here:
                cluster.ray.shutdown()
                cluster.connected_here = False
            sweep_temporaries_of([Location.of(job.target) for job in by_target.values()])
            raise
    finally:
        run.seconds = time.perf_counter() - began
        if cluster.connected_here:
            cluster.ray.shutdown()
    return report


def start_pool(
    ray: Any, by_target: dict[str, Job], spec: WorkerSpec, options: RayOptions, workers: tuple[int, int]
) -> Any:
    """The lazy Ray Data pipeline: file names, one per block, through a pool of `EnhanceWorker` actors."""
    from ray.data import ActorPoolStrategy, DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False  # one bar, the caller's, per file
    context.enable_operator_progress_bars = False
    context.print_on_execution_start = False
    context.max_errored_blocks = -1  # a block whose worker died TASK_RETRIES + 1 times: its files are reported failed
    items = [{"source": str(Location.of(job.source)), "target": target} for target, job in by_target.items()]
    dataset = ray.data.from_items(items, override_num_blocks=min(len(items), MAX_BLOCKS))
    with warnings.catch_warnings():  # retries are set through Ray's remote args, deprecated from Ray 2.60
        warnings.simplefilter("ignore")
        return dataset.map_batches(
            EnhanceWorker,
            fn_constructor_args=(spec,),
            batch_size=1,
            batch_format="default",
            compute=ActorPoolStrategy(min_size=workers[0], max_size=workers[1]),
            num_cpus=options.cpus_per_worker,
            num_gpus=options.gpus_per_worker or None,
            **actor_retries(),
            runtime_env={"env_vars": {**forwarded_env(), "OMP_NUM_THREADS": str(spec.threads)}},
        )


def collect(
    rows: Iterator[dict[str, Any]],
    by_target: dict[str, Job],
    report: JobReport,
    run: RayRun,
    began: float,
    on_advance: Callable[[Job], None] | None,
) -> None:
    """Sort the workers' rows into `report` as they arrive; files whose rows never came failed with their worker."""
    seen = set()
    for row in rows:
        if not run.per_file_s:
            run.startup_s = time.perf_counter() - began
        job = by_target.get(str(row["target"]))
        if job is None or row["target"] in seen:
            continue
        seen.add(row["target"])
        run.per_file_s.append(float(row["seconds"]))
        if row["status"] == "failed":
            report.failed.append((job, str(row["error"])))
        elif row["status"] == "skipped":
            report.skipped.append(job)
        else:
            report.done.append(job)
        if on_advance:
            on_advance(job)
    for target, job in by_target.items():  # blocks dropped after their worker died too often
        if target not in seen:
            report.failed.append(
                (job, f"{job.source}: its worker died {TASK_RETRIES + 1} times while enhancing it; not retried further")
            )
            if on_advance:
                on_advance(job)
