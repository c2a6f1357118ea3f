"""`lowlight video`: one video task opened (`run.video.open_video`), every frame enhanced, a report;
with `--ray`, a plan of every video in a folder on a `RayExecutor`."""

from __future__ import annotations

from pathlib import Path

import typer

from lowlight_cli.cli.app import STATE, LowlightCommand, app, console, handle_errors
from lowlight_cli.cli.cluster import CPUS_PER_WORKER, GPUS_PER_WORKER, RAY, WORKERS
from lowlight_cli.cli.options import build_enhancer, settings_options
from lowlight_cli.cli.photos import OVERWRITE
from lowlight_cli.settings import EnhanceSettings, VideoSettings


@app.command(cls=LowlightCommand)
@handle_errors
@settings_options(exclude=("full_res", "tile"))
@settings_options(VideoSettings, into="video_settings", before="overwrite")
def video(
    source: Path = typer.Argument(..., metavar="INPUT", help="Video file (mp4/mov/mkv/avi…) or a folder of frames."),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Video file (.mp4/.m4v/.mov/.mkv) or a folder for frames. Default: {stem}_enhanced.mp4 beside INPUT.",
    ),
    overwrite: bool = OVERWRITE,
    ray: str | None = RAY,
    workers: str | None = WORKERS,
    gpus_per_worker: float = GPUS_PER_WORKER,
    cpus_per_worker: float = CPUS_PER_WORKER,
    settings: EnhanceSettings = None,  # type: ignore[assignment]  # always given by @settings_options
    video_settings: VideoSettings = None,  # type: ignore[assignment]  # always given by @settings_options
) -> None:
    """Enhance a video or a folder of frames without flicker; audio and frame rate are kept.

    Example: lowlight video clip.mp4 -o clip_bright.mp4 --max-frames 48
    Every frame shares one noise seed, priors are reused within a shot, and static areas are smoothed over time.
    A video is written to a temporary file and moved into place when complete; a frames folder resumes where it stopped.
    With --ray, INPUT is a folder of videos and each worker enhances whole videos: lowlight video ./clips --ray auto
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from lowlight_cli.cli.cluster import ray_options
    from lowlight_cli.run.places import video_task
    from lowlight_cli.run.video import open_video

    cluster = ray_options(ray, workers, gpus_per_worker, cpus_per_worker, settings.device)
    if cluster is not None:
        return videos_on_ray(source, output, cluster, settings, video_settings, overwrite)
    with open_video(video_task(source, output, video_settings), overwrite) as job:
        enhancer = build_enhancer(settings)  # torch: only once the input and output are known to be usable
        with Progress(
            TextColumn("video"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("frames"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console(),
        ) as progress:
            task = progress.add_task("video", total=job.total)
            finished = []  # frames written or found done: what a frames folder holds if Ctrl-C comes

            def advance(index: int) -> None:
                progress.advance(task)
                finished.append(index)

            try:
                report = job.run(enhancer, on_frame=advance)
            except KeyboardInterrupt:
                progress.stop()
                raise typer.Exit(interrupted_video(job.sink, job.task.target, len(finished)))  # noqa: B904 - an exit code
    console().print(
        f"{report.done} frames enhanced, {report.skipped} already done, {report.priors} prior(s) computed, "
        f"{report.fps:.2f} frames/s"
    )
    if not STATE["quiet"]:
        typer.echo(str(job.task.target))


def interrupted_video(sink, target, frames_done: int) -> int:
    """Say what Ctrl-C left behind, which differs between a video file and a frames folder; exit code 130."""
    from lowlight_cli.io.video import FolderSink

    if isinstance(sink, FolderSink):
        message = f"{frames_done} frame(s) are in {target}; re-run the same command to resume from there"
    else:
        message = f"{target} was not written (a video is only moved into place once complete); re-run to start again"
    console().print(f"[yellow]interrupted[/]: {message}", highlight=False)
    return 130


def videos_on_ray(
    source: Path,
    output: Path | None,
    cluster,
    settings: EnhanceSettings,
    video_settings: VideoSettings,
    overwrite: bool,
) -> None:
    """`video DIR --ray`: every video file in DIR to OUT (default <DIR>_enhanced), one whole video per worker."""
    from lowlight_cli.cli.cluster import run_on_ray
    from lowlight_cli.cli.photos import summarise
    from lowlight_cli.run.plan import plan_videos

    plan = plan_videos(source, output, video_settings, overwrite)
    summarise(run_on_ray(plan, settings, cluster, label="video", unit="videos"))
