"""One video task: its input and output opened and checked before any model loads, then every frame enhanced.

Frames depend on each other (one noise field, a prior per shot, smoothing
over time: `run/temporal.py`), so a video is one task, run whole by one
executor or worker. Videos are read and written on the local disk, at the
absolute places the plan saw (the working directory may have changed
since), and messages name them as the user wrote them.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from typing import TYPE_CHECKING

from lowlight_cli.run.tasks import VideoTask
from lowlight_cli.settings import SettingError
from lowlight_cli.storage import Location

if TYPE_CHECKING:
    from lowlight_cli.io.video import FrameSink, FrameSource
    from lowlight_cli.pipeline import Pipeline
    from lowlight_cli.run.temporal import VideoReport


@dataclass
class OpenVideo:
    """A video task's opened input and output, ready for `run`; a context manager that closes both."""

    task: VideoTask
    frames: FrameSource
    sink: FrameSink
    total: int | None  # frames to process, when known
    _stack: ExitStack = field(default_factory=ExitStack, repr=False)

    def __enter__(self) -> OpenVideo:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def run(self, pipeline: Pipeline, on_frame: Callable[[int], None] | None = None) -> VideoReport:
        """Enhance every frame into the output (see `temporal.enhance_video`)."""
        from lowlight_cli.run.temporal import enhance_video

        return enhance_video(
            pipeline, self.frames, self.sink, on_frame=on_frame, smoothing=self.task.settings.smoothing
        )


def open_video(task: VideoTask, overwrite: bool = False) -> OpenVideo:
    """Open a video file or frames folder and its output; everything about both is checked here."""
    from lowlight_cli.io.video import FOLDER_FPS, open_sink, open_source

    source, settings = task.source.as_path(), task.settings  # absolute, as planned
    check_frame_rate(task)
    folder_fps = FOLDER_FPS if settings.fps is None else Fraction(settings.fps).limit_denominator(1001)
    stack = ExitStack()
    try:
        window = (settings.start, settings.end, settings.max_frames)
        frames = stack.enter_context(open_source(source, *window, folder_fps, name=str(task.source)))
        sink = open_sink(task.target.as_path(), frames, settings.frame_format, overwrite, name=str(task.target))
    except BaseException:
        stack.close()
        raise
    max_frames = settings.max_frames
    total = frames.frame_count if max_frames is None else min(max_frames, frames.frame_count or max_frames)
    return OpenVideo(task, frames, sink, total, stack)


def check_frame_rate(task: VideoTask) -> None:
    """`fps` is a frames folder's rate: a video file keeps its own."""
    if task.settings.fps is not None and task.source.as_path().is_file():
        raise SettingError("fps", f"is for a frames folder; {task.source} keeps its own frame rate")


def is_frames_folder(target: Location) -> bool:
    """Whether a video task writes a folder of frames (which resumes) rather than a video file."""
    from lowlight_cli.io.video import VIDEO_SUFFIXES

    return target.suffix.lower() not in VIDEO_SUFFIXES


def enhance_video_task(
    pipeline: Callable[[], Pipeline],
    task: VideoTask,
    overwrite: bool = True,
    on_frame: Callable[[OpenVideo, int], None] | None = None,
) -> VideoReport:
    """A whole video; `pipeline` is called once its input and output are open, so a bad file fails without a
    model. A video file is replaced if there (the plan decided it runs), encoded into a temporary file beside
    the target and moved into place when complete, so a worker that dies leaves no partial video; a frames
    folder resumes unless `overwrite`. `on_frame(video, index)` after each frame written or found done."""
    with open_video(task, overwrite=overwrite or not is_frames_folder(task.target)) as video:
        return video.run(pipeline(), None if on_frame is None else partial(on_frame, video))
