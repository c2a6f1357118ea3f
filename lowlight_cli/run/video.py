"""One video task: its input and output opened and checked before any model loads, then every frame enhanced.

Frames depend on each other (one noise field, a prior per shot, smoothing
over time: `run/temporal.py`), so a video is one task, run whole by one
executor or worker. Videos are read and written on the local disk.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from lowlight_cli.run.tasks import VideoTask
from lowlight_cli.settings import SettingError

if TYPE_CHECKING:
    from lowlight_cli.io.video import FrameSink, FrameSource
    from lowlight_cli.pipeline import Enhancer
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

    def run(self, enhancer: Enhancer, on_frame: Callable[[int], None] | None = None) -> VideoReport:
        """Enhance every frame into the output (see `temporal.enhance_video`)."""
        from lowlight_cli.run.temporal import enhance_video

        return enhance_video(
            enhancer, self.frames, self.sink, on_frame=on_frame, smoothing=self.task.settings.smoothing
        )


def open_video(task: VideoTask, overwrite: bool = False) -> OpenVideo:
    """Open a video file or frames folder and its output; everything about both is checked here."""
    from lowlight_cli.io.video import FOLDER_FPS, open_sink, open_source

    source, settings = Path(str(task.source)), task.settings
    if settings.fps is not None and source.is_file():
        raise SettingError("fps", f"is for a frames folder; {source} keeps its own frame rate")
    folder_fps = FOLDER_FPS if settings.fps is None else Fraction(settings.fps).limit_denominator(1001)
    stack = ExitStack()
    try:
        frames = stack.enter_context(open_source(source, settings.start, settings.end, settings.max_frames, folder_fps))
        sink = open_sink(Path(str(task.target)), frames, settings.frame_format, overwrite)
    except BaseException:
        stack.close()
        raise
    max_frames = settings.max_frames
    total = frames.frame_count if max_frames is None else min(max_frames, frames.frame_count or max_frames)
    return OpenVideo(task, frames, sink, total, stack)


def enhance_video_task(enhancer: Enhancer, task: VideoTask) -> None:
    """A whole video, its output replaced if there (the plan decided it runs): encoded into a temporary file
    beside the target and moved into place when complete, so a worker that dies leaves no partial video."""
    with open_video(task, overwrite=True) as video:
        video.run(enhancer)
