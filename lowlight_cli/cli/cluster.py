"""`--ray`, `--workers`, `--gpus-per-worker`, `--cpus-per-worker` of `batch` and `video`, and the progress bar.

The options are checked here, before any model is loaded or Ray started;
the run itself is `run.ray_executor.RayExecutor`'s. Torch- and Ray-free
until a command runs.
"""

from __future__ import annotations

from typing import Any

import typer

from lowlight_cli.cli.app import STATE, console

RAY = typer.Option(
    None,
    "--ray",
    metavar="[ADDRESS|auto]",
    help='Run on a Ray cluster (pip install "lowlight-cli\\[ray]"). Alone: RAY_ADDRESS, else a running '
    "`ray start` on this machine, else a local cluster of this machine's CPUs and GPUs; auto: "
    "a running cluster only; or HOST:6379 / ray://HOST:10001.",
)
WORKERS = typer.Option(
    None,
    "--workers",
    metavar="N|MIN,MAX",
    help="Ray workers, each loading the model once: N, or MIN,MAX for a pool that grows with the "
    "work. Default: as many as the cluster's CPUs (GPUs with --gpus-per-worker) hold.",
)
GPUS_PER_WORKER = typer.Option(
    0.0, "--gpus-per-worker", min=0.0, metavar="G", help="GPUs per Ray worker (0.5: two workers share a GPU)."
)
CPUS_PER_WORKER = typer.Option(
    1.0, "--cpus-per-worker", min=0.0, metavar="C", help="CPUs per Ray worker; also its torch threads."
)


def ray_options(ray: str | None, workers: str | None, gpus_per_worker: float, cpus_per_worker: float, device: str):
    """The checked `RayOptions`, or None without `--ray` (then the worker options are an error)."""
    from lowlight_cli.errors import UsageError
    from lowlight_cli.run.ray_cluster import RayOptions, check_options, parse_workers

    if ray is None:
        given = [
            name
            for name, value in (
                ("--workers", workers),
                ("--gpus-per-worker", gpus_per_worker),
                ("--cpus-per-worker", cpus_per_worker != 1.0),
            )
            if value
        ]
        if given:
            raise UsageError(f"{', '.join(given)} {'apply' if len(given) > 1 else 'applies'} only with --ray")
        return None
    options = RayOptions(
        address=ray or None,
        workers=parse_workers(workers),
        gpus_per_worker=gpus_per_worker,
        cpus_per_worker=cpus_per_worker,
    )
    check_options(options, device)
    return options


def progress(label: str, total: int | None, unit: str, already: int = 0):
    """A rich bar per file: done/total, throughput, elapsed and remaining time. Returns (context, advance).

    `total` may be None until known (`bar.update`). `already` files count as done from the start (finished
    outputs a re-run skips) without counting towards the throughput or the time left, which a burst of instant
    skips would otherwise inflate.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Rate(ProgressColumn):
        """Files done per second since the bar started (start-up included, so it never flatters a burst)."""

        def render(self, task: Any) -> Text:
            elapsed = task.finished_time if task.finished else task.elapsed
            worked = task.completed - task.fields.get("already", 0)
            return Text(f"{worked / elapsed:.2f} {unit}/s" if elapsed and worked > 0 else "")

    bar = Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        Rate(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console(),
        transient=False,
    )
    task = bar.add_task(label, total=total, completed=already, already=already)

    def advance(item: Any) -> None:
        bar.advance(task)

    return bar, advance


def plan_progress(label: str, plan: Any, unit: str = "img"):
    """`progress` for a `run.plan.Plan`: the tasks its triage skipped or refused count as done from the start,
    and the executor advances the bar once per task it runs."""
    return progress(label, len(plan.tasks), unit, already=len(plan.tasks) - len(plan.pending))


def run_on_ray(plan: Any, settings: Any, options: Any, label: str = "batch", unit: str = "img"):
    """`plan` on a `RayExecutor` under a progress bar; notes in yellow; `-v` adds Ray's own logs and the pool's
    figures."""
    from lowlight_cli.run.ray_executor import RayExecutor

    out = console()
    bar, advance = plan_progress(label, plan, unit)
    with bar:
        notify = lambda message: bar.console.print(f"[yellow]note:[/] {message}")  # noqa: E731
        executor = RayExecutor(settings, options, notify=notify, verbose=STATE["verbose"])
        report = executor.run(plan, on_advance=advance)
    stats = executor.stats
    if STATE["verbose"] and stats.per_task_s:
        out.print(
            f"ray: {stats.workers[0]}–{stats.workers[1]} workers, first result after {stats.startup_s:.1f}s, "
            f"{len(stats.per_task_s)} files in {stats.seconds:.1f}s"
        )
    return report
