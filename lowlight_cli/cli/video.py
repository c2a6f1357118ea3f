"""`lowlight video`: a plan of one video task on the `LocalExecutor` under a bar of its frames, a report;
with `--ray`, a plan of every video in a folder on a `RayExecutor`."""

from __future__ import annotations

from pathlib import Path

import typer

from lowlight_cli.cli.app import STATE, LowlightCommand, app, console, handle_errors
from lowlight_cli.cli.cluster import CPUS_PER_WORKER, GPUS_PER_WORKER, RAY, WORKERS
from lowlight_cli.cli.options import build_pipeline, settings_options
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
    from lowlight_cli.cli.cluster import ray_options
    from lowlight_cli.run.plan import plan_video

    cluster = ray_options(ray, workers, gpus_per_worker, cpus_per_worker, settings.device)
    if cluster is not None:
        return videos_on_ray(source, output, cluster, settings, video_settings, overwrite)
    one_video(plan_video(source, output, video_settings, overwrite), settings)


def one_video(plan, settings: EnhanceSettings) -> None:
    """`video INPUT`: the plan's one task on the `LocalExecutor` under a bar of its frames; the model is built
    once the input and output are open, so a bad file or output fails without loading it."""
    from lowlight_cli.cli.cluster import progress
    from lowlight_cli.cli.photos import summarise
    from lowlight_cli.run.local import LocalExecutor

    task = plan.tasks[0]
    finished: list[int] = []  # frames written or found done: what a frames folder holds if Ctrl-C comes
    reports: list = []  # the video's own report (frames, priors, speed)
    bar, advance = progress("video", None, "frames")

    def on_frame(video, index: int) -> None:
        if not finished:  # the frame count is known once the video is open
            bar.update(bar.task_ids[0], total=video.total)
        advance(index)
        finished.append(index)

    executor = LocalExecutor(
        lambda: build_pipeline(settings), on_frame=on_frame, on_video=lambda _task, frames: reports.append(frames)
    )
    with bar:
        try:
            report = executor.run(plan)
        except KeyboardInterrupt:
            bar.stop()
            raise typer.Exit(interrupted_video(task.target, len(finished))) from None  # an exit code
    if not report.done:  # skipped (the output exists) or failed: said as `enhance` says it
        return summarise(report)
    frames = reports[0]
    console().print(
        f"{frames.done} frames enhanced, {frames.skipped} already done, {frames.priors} prior(s) computed, "
        f"{frames.fps:.2f} frames/s"
    )
    if not STATE["quiet"]:
        typer.echo(str(task.target))


def interrupted_video(target, frames_done: int) -> int:
    """Say what Ctrl-C left behind, which differs between a video file and a frames folder; exit code 130."""
    from lowlight_cli.run.video import is_frames_folder

    if is_frames_folder(target):
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
