"""`LocalExecutor`: a plan's tasks run in this process, one after the other.

The next photo is decoded in a background thread while the current one is
enhanced, so the model is not kept waiting on the disk. The model is built
once the first photo has decoded: a run whose photos cannot be read fails
in milliseconds, without loading it, and a finished folder never loads it.
Each task's exception becomes a reported failure through `policy.guarded`;
KeyboardInterrupt propagates (finished outputs are whole files, thanks to
atomic writes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING

from lowlight_cli.errors import LowlightError
from lowlight_cli.run.photo import Photo, enhance_photo, read_photo
from lowlight_cli.run.plan import Plan, Report
from lowlight_cli.run.policy import RunFailed, Status, guarded
from lowlight_cli.run.tasks import PhotoTask, Task, VideoTask
from lowlight_cli.run.video import OpenVideo, enhance_video_task

if TYPE_CHECKING:
    from lowlight_cli.io.images import LoadedImage
    from lowlight_cli.pipeline import EnhanceResult, Pipeline
    from lowlight_cli.run.temporal import VideoReport

OnDone = Callable[[PhotoTask, "LoadedImage", "EnhanceResult"], None]
OnFrame = Callable[[OpenVideo, int], None]
OnVideo = Callable[[VideoTask, "VideoReport"], None]


class LocalExecutor:
    """Runs any plan here. `pipeline` is a `Pipeline`, or a function that builds one when a task first needs it.

    `on_done(task, image, result)` is called after each photo written (the CLI's `--verbose` timings),
    `on_frame(video, index)` after each frame of a video written or found done (its opened input and output:
    how many frames, which kind of output), `on_video(task, report)` after each video.
    """

    def __init__(
        self,
        pipeline: Pipeline | Callable[[], Pipeline],
        on_done: OnDone | None = None,
        on_frame: OnFrame | None = None,
        on_video: OnVideo | None = None,
    ) -> None:
        self._make = pipeline if callable(pipeline) else (lambda: pipeline)
        self._built: Pipeline | None = None
        self.on_done, self.on_frame, self.on_video = on_done, on_frame, on_video
        self.overwrite = False  # the plan's, while it runs: a frames folder resumes without it

    def pipeline(self) -> Pipeline:
        """The pipeline, built on first use; a setting or model that cannot be built stops the run (`RunFailed`)."""
        if self._built is None:
            try:
                self._built = self._make()
            except LowlightError as exc:
                raise RunFailed from exc
        return self._built

    def run(self, plan: Plan, on_advance: Callable[[Task], None] | None = None) -> Report:
        """Run the plan's pending tasks; `on_advance(task)` after each. Per-task failures are in the report."""
        report, self.overwrite = plan.report(), plan.overwrite
        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch") as pool:
                for task, decoding in prefetched(pool, plan.pending):
                    report.add(task, guarded(task.source, partial(self.run_task, task, decoding)))
                    if on_advance is not None:
                        on_advance(task)
        except RunFailed as stop:
            raise stop.__cause__ from None  # type: ignore[misc]  # RunFailed is always raised from its cause
        return report

    def run_task(self, task: Task, decoding: Future[Photo] | None) -> Status:
        """One task; a photo's decoding (`prefetched`) may already be under way."""
        if isinstance(task, VideoTask):
            frames = enhance_video_task(self.pipeline, task, self.overwrite, self.on_frame)
            if self.on_video is not None:
                self.on_video(task, frames)
            return "done"
        photo = decoding.result() if decoding is not None else read_photo(task.source)
        result = enhance_photo(self.pipeline(), task, photo)
        if self.on_done is not None and result is not None:
            self.on_done(task, photo.image, result)
        return "done"


def prefetched(pool: ThreadPoolExecutor, tasks: Sequence[Task]) -> Iterator[tuple[Task, Future[Photo] | None]]:
    """Each task with its photo's decoding, the next one's started in `pool` before this one is handed out."""

    def decode(task: Task) -> Future[Photo] | None:
        return pool.submit(read_photo, task.source) if isinstance(task, PhotoTask) else None

    upcoming = decode(tasks[0]) if tasks else None
    for index, task in enumerate(tasks):
        current = upcoming
        upcoming = decode(tasks[index + 1]) if index + 1 < len(tasks) else None
        yield task, current
