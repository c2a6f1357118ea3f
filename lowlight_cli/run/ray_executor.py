"""`RayExecutor`: a plan's tasks fanned out over a Ray cluster with Ray Data's actor pool.

How a run goes, and why:

* **The driver plans, the cluster works.** The plan (made and triaged by
  the command) lists the inputs, on disk or in a bucket; the driver checks
  every option and the model itself (`check_settings`) *before* Ray
  starts, so a bad `--model` is one line, not pages of `ActorDiedError`,
  and a finished folder starts no pool at all. Only tasks as JSON lines go
  into Ray Data's blocks: no read tasks exist to be starved of CPU by an
  actor pool that takes every core, and no decoded image ever meets
  Arrow's 2 GB block limit.
* **Each actor builds its own `Pipeline`** from the checkpoint's bytes (a
  loaded model is never shipped), sets torch's threads to its CPU share,
  then per task: re-checks that the output is still missing, runs the
  same photo or video step as the local executor, and returns a row. A
  task's exception becomes a row through the one error policy
  (`policy.guarded`), never a failed job; its reason travels with the
  settings it names marked (`policy.reason_to_row`), so the driver's
  summary words them as options, as a local run's does.
* **A dead worker is replaced.** Ray restarts the actor and retries its
  block; an output this run already wrote is not written again (its time
  is at or after the run's start), and a write is never seen half-done. A
  task that kills its worker `TASK_RETRIES + 1` times is reported failed.
* Ray's own progress bars and logs are off; the caller draws one progress
  bar per task.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from lowlight_cli.errors import LowlightError
from lowlight_cli.run.photo import enhance_photo, read_photo
from lowlight_cli.run.plan import Plan, Report
from lowlight_cli.run.policy import Outcome, Status, guarded, reason_from_row, reason_to_row
from lowlight_cli.run.ray_cluster import RayOptions, check_options, connect, forwarded_env, pool_size
from lowlight_cli.run.tasks import Task, VideoTask, from_row, to_row
from lowlight_cli.run.video import enhance_video_task
from lowlight_cli.settings import EnhanceSettings
from lowlight_cli.storage import Location, sweep_temporaries_of

if TYPE_CHECKING:
    from lowlight_cli.pipeline import Pipeline

TASK_RETRIES = 3  # a task that kills its worker this many times more is reported failed, not retried forever
MAX_BLOCKS = 2000  # one task per block up to this many (finest retries); more tasks share blocks


def check_settings(settings: EnhanceSettings) -> bytes:
    """Check the model on the driver; return the checkpoint's bytes for the actors.

    `settings` were validated when made; this loads the checkpoint into a CPU
    `Pipeline` without a prior (the denoiser is small: its names and shapes
    are checked), and finds the SAM weights for `--prior sam` (downloading
    them, as the local batch does), so that a bad `--model` is one line here
    rather than a dead actor pool.
    """
    from lowlight_cli.checkpoints.locate import locate_sam_checkpoint, resolve_model_path
    from lowlight_cli.pipeline import build

    build(settings.with_changes(device="cpu", prior="none", sam_checkpoint=None))
    if settings.prior == "sam":
        locate_sam_checkpoint(settings.sam_model, settings.sam_checkpoint, download=True)
    return resolve_model_path(settings.model).read_bytes()


def worker_env(threads: int) -> dict[str, str]:
    """A worker process's environment: the driver's forwarded settings, its torch threads, and NumPy's
    huge-page switch, which `lowlight_cli` sets only if NumPy is not loaded yet (a Ray worker loads it first)."""
    return {
        **forwarded_env(),
        "OMP_NUM_THREADS": str(threads),
        "NUMPY_MADVISE_HUGEPAGE": os.environ.get("NUMPY_MADVISE_HUGEPAGE", "0"),
    }


@dataclass
class WorkerSpec:
    """What an actor needs to build its own `Pipeline` and run tasks: no loaded model, only bytes and settings."""

    settings: EnhanceSettings
    model_bytes: bytes
    model_name: str
    overwrite: bool
    started: float  # the driver's clock when work began: outputs at or after it were written by this run
    threads: int


class EnhanceWorker:
    """A Ray Data actor: one `Pipeline` per process, then one row per task."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec, self.error, self.pipeline = spec, cast("LowlightError | None", None), cast("Pipeline | None", None)
        try:
            import torch

            torch.set_num_threads(spec.threads)
            from lowlight_cli.pipeline import build

            model_path = Path(tempfile.mkdtemp(prefix="lowlight-worker-")) / "model.safetensors"
            model_path.write_bytes(spec.model_bytes)
            # Errors about the model's output name the model the user gave, not this copy of it.
            self.pipeline = build(spec.settings.with_changes(model=str(model_path)), model_name=spec.model_name)
        except Exception as exc:  # noqa: BLE001 - every task then fails with this line, instead of a dead pool
            parts = exc.parts if isinstance(exc, LowlightError) else (str(exc),)
            self.error = LowlightError(f"worker on {socket.gethostname()} could not load the model: ", *parts)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        rows: dict[str, list] = {"target": [], "status": [], "error": [], "seconds": []}
        for row in batch["task"]:
            began = time.perf_counter()
            task = from_row(str(row))
            outcome = (
                Outcome("failed", LowlightError(f"{task.source}: ", *self.error.parts))
                if self.error is not None
                else guarded(task.source, partial(self.run_task, task), contain_unexpected=True)
            )
            for key, value in zip(
                rows,
                (os.fspath(task.target), outcome.status, reason_to_row(outcome.reason), time.perf_counter() - began),
                strict=True,
            ):
                rows[key].append(value)
        return rows

    def present(self, target: Location) -> Status | None:
        """'done' if this run already wrote `target` (a retried block), 'skipped' if it was there before, else None."""
        if not target.exists():
            return None
        modified = target.modified()
        slack = 0.0 if target.local else 1.0  # object stores keep whole seconds
        if modified is not None and modified >= self.spec.started - slack:
            return "done"
        return None if self.spec.overwrite else "skipped"

    def run_task(self, task: Task) -> Status:
        """One task, unless its output appeared meanwhile (Ray may have run it elsewhere)."""
        state = self.present(task.target)
        if state:
            return state
        pipeline = cast("Pipeline", self.pipeline)  # set unless self.error
        if isinstance(task, VideoTask):
            enhance_video_task(lambda: pipeline, task)
            return "done"
        outcome: list[Status | None] = []

        def still_missing() -> bool:  # the last look before writing
            outcome.append(self.present(task.target))
            return outcome[-1] is None

        written = enhance_photo(pipeline, task, read_photo(task.source), before_write=still_missing)
        return "done" if written is not None else cast(Status, outcome[-1])


@dataclass
class RayRun:
    """What a Ray run did beyond the report: for the summary and the benchmark."""

    workers: tuple[int, int] = (0, 0)
    startup_s: float = 0.0  # ray.init and the pool's start, until the first task came back
    seconds: float = 0.0
    per_task_s: list[float] = field(default_factory=list)


class RayExecutor:
    """Runs any plan on a Ray cluster; the same report as the local executor. `stats` says how the run went."""

    def __init__(
        self,
        settings: EnhanceSettings,
        options: RayOptions,
        notify: Callable[[str], None] = lambda message: None,
        verbose: bool = False,
    ) -> None:
        check_options(options, settings.device)
        self.settings, self.options, self.notify, self.verbose = settings, options, notify, verbose
        self.stats = RayRun()

    def run(self, plan: Plan, on_advance: Callable[[Task], None] | None = None) -> Report:
        """Run the plan's pending tasks; per-task failures are rows in the report. The run as a whole fails only on
        a problem with the model or the cluster, each raised as one line before any work starts."""
        began = time.perf_counter()
        report = plan.report()
        if not plan.pending:
            return report
        model_bytes = check_settings(self.settings)
        cluster = connect(self.options.address, self.verbose)
        try:
            self.stats.workers = pool_size(self.options, cluster, len(plan.pending), self.notify)
            spec = WorkerSpec(
                self.settings, model_bytes, self.settings.model, plan.overwrite, time.time(), self.threads()
            )
            by_target = {os.fspath(task.target): task for task in plan.pending}
            rows = iter(self.start_pool(cluster.ray, by_target, spec).iter_rows())
            try:
                self.collect(rows, by_target, report, began, on_advance)
            except BaseException:  # Ctrl-C: stop the pool (its actors die), then remove what their writes left
                close = getattr(rows, "close", None)
                if close is not None:
                    close()
                if cluster.connected_here:
                    cluster.ray.shutdown()
                    cluster.connected_here = False
                sweep_temporaries_of([task.target for task in by_target.values()])
                raise
        finally:
            self.stats.seconds = time.perf_counter() - began
            if cluster.connected_here:
                cluster.ray.shutdown()
        return report

    def threads(self) -> int:
        return max(1, int(self.options.cpus_per_worker))

    def start_pool(self, ray: Any, by_target: dict[str, Task], spec: WorkerSpec) -> Any:
        """The lazy Ray Data pipeline: tasks, one per block, through a pool of `EnhanceWorker` actors."""
        from ray.data import ActorPoolStrategy, DataContext

        context = DataContext.get_current()
        context.enable_progress_bars = False  # one bar, the caller's, per task
        context.enable_operator_progress_bars = False
        context.print_on_execution_start = False
        context.max_errored_blocks = -1  # a block whose worker died TASK_RETRIES + 1 times: its tasks fail
        items = [{"task": to_row(task)} for task in by_target.values()]
        dataset = ray.data.from_items(items, override_num_blocks=min(len(items), MAX_BLOCKS))
        with warnings.catch_warnings():  # retries are set through Ray's remote args, deprecated from Ray 2.60
            warnings.simplefilter("ignore")
            return dataset.map_batches(
                EnhanceWorker,
                fn_constructor_args=(spec,),
                batch_size=1,
                batch_format="default",
                compute=ActorPoolStrategy(min_size=self.stats.workers[0], max_size=self.stats.workers[1]),
                num_cpus=self.options.cpus_per_worker,
                num_gpus=self.options.gpus_per_worker or None,
                max_restarts=-1,  # dead actors are always replaced
                max_task_retries=TASK_RETRIES,  # Ray Data's default retries a block forever
                runtime_env={"env_vars": worker_env(spec.threads)},
            )

    def collect(
        self,
        rows: Iterator[dict[str, Any]],
        by_target: dict[str, Task],
        report: Report,
        began: float,
        on_advance: Callable[[Task], None] | None,
    ) -> None:
        """Sort the workers' rows into `report` as they arrive; tasks whose rows never came failed with their worker."""
        seen = set()
        for row in rows:
            if not self.stats.per_task_s:
                self.stats.startup_s = time.perf_counter() - began
            task = by_target.get(str(row["target"]))
            if task is None or row["target"] in seen:
                continue
            seen.add(row["target"])
            self.stats.per_task_s.append(float(row["seconds"]))
            report.add(task, Outcome(row["status"], reason_from_row(str(row["error"]))))
            if on_advance:
                on_advance(task)
        for target, task in by_target.items():  # blocks dropped after their worker died too often
            if target not in seen:
                died = f"its worker died {TASK_RETRIES + 1} times while enhancing it; not retried further"
                report.add(task, Outcome("failed", f"{task.source}: {died}"))
                if on_advance:
                    on_advance(task)
