"""The library's units of work: one photo file, a list of them, one video.

Load → enhance → check → write, with everything the CLI's commands promise
(metadata and bit depth kept, the input's own JPEG quality, atomic writes,
never over an input, a model's non-finite output refused with its name).
`enhance` and `batch` drive `enhance_files`; a worker elsewhere (a Ray actor)
calls `process_file` per photo. The CLI only parses, builds the settings and
prints.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from lowlight_cli.errors import UsageError, WeightsError
from lowlight_cli.io.images import DEFAULT_QUALITY, LoadedImage, jpeg_quality, load_image, save_image
from lowlight_cli.jobs import Job, JobReport, default_folder_output, default_output, run_jobs

if TYPE_CHECKING:
    from lowlight_cli.io.video import FrameSink, FrameSource
    from lowlight_cli.pipeline import EnhanceResult, Enhancer
    from lowlight_cli.temporal import VideoReport


def check_finite(rgb: np.ndarray, model: str | Path) -> None:
    """Fail with the model's name when its result holds NaN/Inf, which would otherwise be saved as black."""
    finite = np.isfinite(rgb)
    if not finite.all():
        share = 100.0 * float(np.count_nonzero(~finite)) / finite.size
        raise WeightsError(f"model {model} produced NaN or infinite values ({share:.3g}% of the output); "
                           "the checkpoint is broken or incompatible, nothing was written")


def enhance_loaded(enhancer: "Enhancer", image: LoadedImage, source: Path, target: Path,
                   quality: int | None = None) -> "EnhanceResult":
    """Enhance a decoded photo and write it to `target` atomically, never over `source`.

    `quality` (JPEG/WebP) defaults to the input's own where it can be read, else 95.
    """
    result = enhancer.enhance(image.rgb)
    check_finite(result.rgb, enhancer.model_name)  # a broken checkpoint must not write black
    save_image(target, result.rgb, like=image, protect=[source],
               quality=quality or jpeg_quality(source) or DEFAULT_QUALITY)
    return result


def process_file(enhancer: "Enhancer", source: Path, target: Path, quality: int | None = None) -> "EnhanceResult":
    """One photo file: load, enhance, check, write atomically. Raises `LowlightError` for a bad file."""
    return enhance_loaded(enhancer, load_image(source), Path(source), Path(target), quality)


def enhance_files(enhancer: "Enhancer | None", jobs: list[Job], overwrite: bool, quality: int | None = None,
                  on_advance: Callable[[Job], None] | None = None,
                  on_done: Callable[[Job, LoadedImage, "EnhanceResult"], None] | None = None) -> JobReport:
    """Enhance every pending job (finished outputs skipped unless `overwrite`), decoding the next photo while
    the current one is enhanced; per-file failures are collected in the report. `enhancer` may be None
    when no job is pending."""

    def process(job: Job, image: LoadedImage) -> None:
        result = enhance_loaded(enhancer, image, job.source, job.target, quality)
        if on_done is not None:
            on_done(job, image, result)

    return run_jobs(jobs, lambda job: load_image(job.source), process, overwrite, on_advance=on_advance)


@dataclass
class VideoJob:
    """An opened video input and its output, ready for `run`; a context manager that closes both."""

    frames: "FrameSource"
    sink: "FrameSink"
    target: Path
    total: int | None  # frames to process, when known
    _stack: ExitStack = field(default_factory=ExitStack, repr=False)

    def __enter__(self) -> "VideoJob":
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def run(self, enhancer: "Enhancer", on_frame: Callable[[int], None] | None = None,
            smoothing: float = 0.8) -> "VideoReport":
        """Enhance every frame into the output (see `temporal.enhance_video`)."""
        from lowlight_cli.temporal import enhance_video

        return enhance_video(enhancer, self.frames, self.sink, on_frame=on_frame, smoothing=smoothing)


def open_video_job(source: Path, output: Path | None = None, start: float | None = None, end: float | None = None,
                   max_frames: int | None = None, fps: float | None = None, frame_format: str | None = None,
                   overwrite: bool = False) -> VideoJob:
    """Open a video file or frames folder and its output (default `{stem}_enhanced.mp4` beside it).

    Everything about the input and output is checked here, before any model is loaded.
    """
    from lowlight_cli.io.video import FOLDER_FPS, open_sink, open_source

    if fps is not None and source.is_file():
        raise UsageError(f"--fps is for a frames folder; {source} keeps its own frame rate")
    folder_fps = FOLDER_FPS if fps is None else Fraction(fps).limit_denominator(1001)
    stack = ExitStack()
    try:
        frames = stack.enter_context(open_source(source, start, end, max_frames, folder_fps))
        target = output or (default_folder_output(source, ".mp4") if source.is_dir() else default_output(source, ".mp4"))
        sink = open_sink(target, frames, frame_format, overwrite)
    except BaseException:
        stack.close()
        raise
    total = frames.frame_count if max_frames is None else min(max_frames, frames.frame_count or max_frames)
    return VideoJob(frames, sink, target, total, stack)
