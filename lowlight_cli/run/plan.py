"""A `Plan`: the tasks of one command, triaged once, before any model loads.

Triage sorts the tasks into those still to run, finished outputs skipped
(unless `--overwrite`), and those that fail before any work: an output that
is an input (inputs are never replaced) or whose local folder cannot be
written. The same plan then feeds the progress bar (how many are left) and
an executor (what to run), so no command triages twice and both see the
same answer. Executors start their `Report` from the plan's (`Plan.report`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lowlight_cli.errors import InputError, LowlightError, OutputError, Setting, UsageError
from lowlight_cli.io.images import check_folder_writable, writable_ancestor
from lowlight_cli.run.places import (
    default_folder_location,
    default_folder_output,
    folder_photo_tasks,
    folder_video_tasks,
    no_images_message,
    photo_tasks,
    same_place,
    unsupported_images,
    video_task,
)
from lowlight_cli.run.policy import Outcome
from lowlight_cli.run.tasks import Task, VideoTask
from lowlight_cli.run.video import check_frame_rate, is_frames_folder
from lowlight_cli.settings import VideoSettings
from lowlight_cli.storage import STALE_AFTER_S, Location, is_remote, sweep_temporaries_of

RAY = Setting("ray")  # `video DIR --ray`: an option of the command, named as the library names it


@dataclass
class Report:
    """What a run did, per task: the summary a command prints and its exit code come from this."""

    done: list[Task] = field(default_factory=list)
    skipped: list[Task] = field(default_factory=list)
    failed: list[tuple[Task, str | LowlightError]] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)  # pictures `batch` could not read, listed in its summary

    def add(self, task: Task, outcome: Outcome) -> None:
        """Record what running `task` came to."""
        if outcome.status == "failed":
            self.failed.append((task, outcome.reason))
        elif outcome.status == "skipped":
            self.skipped.append(task)
        else:
            self.done.append(task)


@dataclass
class Plan:
    """Every task of a command and, from triage, which still run (`pending`) and which do not."""

    tasks: list[Task]
    overwrite: bool = False
    pending: list[Task] = field(default_factory=list)
    skipped: list[Task] = field(default_factory=list)  # finished outputs
    refused: list[tuple[Task, str]] = field(default_factory=list)  # failed before any work, with the reason
    unsupported: list[str] = field(default_factory=list)
    swept: list[str] = field(default_factory=list)  # stale write temporaries of the planned outputs, removed

    @classmethod
    def of(
        cls, tasks: list[Task], overwrite: bool, unsupported: list[str] | None = None, swept: list[str] | None = None
    ) -> Plan:
        """`tasks`, triaged (`triage`)."""
        plan = cls(tasks, overwrite, unsupported=unsupported or [], swept=swept or [])
        plan.pending = triage(plan)
        return plan

    def report(self) -> Report:
        """A fresh report holding what triage decided; an executor adds what running decides."""
        return Report(skipped=list(self.skipped), failed=list(self.refused), unsupported=list(self.unsupported))


def triage(plan: Plan) -> list[Task]:
    """The tasks still to run; the others go to `plan.skipped` (finished outputs, unless `overwrite`) or
    `plan.refused` (outputs that are inputs: `enhance x.jpg -o x.jpg`, or `x.jpg x_enhanced.jpg --overwrite`;
    inputs are never replaced), and outputs whose local folder cannot be written fail before any work."""
    inputs = {task.source.resolve() for task in plan.tasks}
    pending = []
    for task in plan.tasks:
        if task.target.resolve() == task.source.resolve():
            plan.refused.append(
                (
                    task,
                    f"{task.source}: refusing to write over the input (its output {task.target} "
                    "is one of the inputs; choose another -o)",
                )
            )
        elif task.target.exists() and not plan.overwrite and not resumes(task):
            plan.skipped.append(task)
        elif task.target.resolve() in inputs:
            plan.refused.append(
                (task, f"{task.source}: its output {task.target} is one of the inputs; inputs are never overwritten")
            )
        else:
            pending.append(task)
    return writable(pending, plan.refused)


def resumes(task: Task) -> bool:
    """A frames folder is finished frame by frame: one that exists is resumed, not skipped."""
    return isinstance(task, VideoTask) and is_frames_folder(task.target)


def writable(tasks: list[Task], refused: list[tuple[Task, str]]) -> list[Task]:
    """`tasks` whose local output folder can be written; the others are refused now, before any is enhanced."""
    tried: dict[Path, str | None] = {}
    problems = {
        folder: write_problem(folder, tried)
        for folder in {Path(str(task.target)).parent for task in tasks if task.target.local}
    }
    kept = []
    for task in tasks:
        problem = problems.get(Path(str(task.target)).parent) if task.target.local else None
        if problem is None:
            kept.append(task)
        else:
            refused.append(
                (task, f"{task.source}: not enhanced, its output {task.target} cannot be written: {problem}")
            )
    return kept


def write_problem(folder: Path, tried: dict[Path, str | None]) -> str | None:
    """Why no file can be written in `folder`, or None. Tried where the write would land
    (`io.images.writable_ancestor`), once per such place (`tried`): a new tree of thousands of
    sub-folders costs one test of the folder it will grow in."""
    try:
        place = writable_ancestor(folder)
    except OutputError as exc:
        return str(exc)
    if place not in tried:
        try:
            check_folder_writable(place)
            tried[place] = None
        except OutputError as exc:
            tried[place] = str(exc)
    return tried[place]


def plan_files(sources: list[Path], output: Path | None, ext: str | None, quality: int | None, overwrite: bool) -> Plan:
    """`enhance INPUT... [-o OUT]` (`places.photo_tasks`)."""
    return Plan.of(list(photo_tasks(sources, output, ext, quality)), overwrite)


def plan_folder(
    folder: str,
    output: str | None,
    recursive: bool,
    pattern: str | None,
    ext: str | None,
    quality: int | None,
    overwrite: bool,
) -> Plan:
    """`batch DIR [-o OUT]`: every photo under DIR into OUT (default `<DIR>_enhanced`), sub-folders mirrored;
    `-o DIR` writes each result beside its input as `{stem}_enhanced` (one naming rule with `enhance`).

    Finding nothing to enhance is an error, whether the folder is empty or holds only unreadable pictures
    (which are named). What writers killed mid-write (SIGKILL, a lost machine) left beside the planned
    outputs is swept first (`sweep_stale_temporaries`); nothing else in OUT, which may be DIR itself.
    """
    remote = is_remote(folder) or (output is not None and is_remote(output))
    place = Location.of if remote else Path
    source = place(folder)
    target = place(output) if output is not None else default_folder_location(source)
    tasks = folder_photo_tasks(source, target, recursive, pattern, ext, quality)
    outside = None if same_place(source, target) else target
    unsupported = unsupported_images(source, recursive, pattern, exclude=outside)  # listed, never skipped silently
    if not tasks:
        raise InputError(*no_images_message(source, recursive, unsupported))
    return Plan.of(list(tasks), overwrite, unsupported, sweep_stale_temporaries(tasks))


def sweep_stale_temporaries(tasks: Sequence[Task]) -> list[str]:
    """Remove the stale write temporaries (`.NAME.XXXX.part`) of these tasks' own targets, beside each one:
    never another file, whatever its name, nor a folder the tasks do not write into (`-o DIR` writes into
    the user's own folder, which may hold their own `.part` downloads)."""
    return sweep_temporaries_of([task.target for task in tasks], older_than=STALE_AFTER_S)


def plan_videos(source: Path, output: Path | None, settings: VideoSettings, overwrite: bool) -> Plan:
    """`video DIR --ray`: every video file in DIR into OUT (default `<DIR>_enhanced`), each a whole task."""
    if settings.frame_format is not None or settings.fps is not None:
        raise UsageError(
            Setting("frame_format"), " and ", Setting("fps"), " are for frames folders; ", RAY, " takes video files"
        )
    if not source.is_dir():
        raise UsageError(RAY, f" takes a folder of videos; {source} is one file (run without ", RAY, ")")
    target = output or default_folder_output(source)
    if target.resolve() == source.resolve():
        raise UsageError("-o must differ from the input folder (inputs are never overwritten)")
    tasks = folder_video_tasks(source, target, settings)
    if not tasks:
        raise InputError(f"{source}: no video files (a folder of frames is one video: run without ", RAY, ")")
    return Plan.of(list(tasks), overwrite, swept=sweep_stale_temporaries(tasks))


def plan_video(source: Path, output: Path | None, settings: VideoSettings, overwrite: bool) -> Plan:
    """`video INPUT [-o OUT]`: one video file or frames folder into OUT (`places.video_task`), one task.

    A missing input and a frame rate given for a video file are the command's errors, raised here."""
    if not source.exists():
        raise InputError(f"{source}: file not found")
    task = video_task(source, output, settings)
    check_frame_rate(task)
    return Plan.of([task], overwrite, swept=sweep_stale_temporaries([task]))
