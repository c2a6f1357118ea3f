"""The typed units a plan is made of: a photo or a video file, its output, and the settings it runs with.

Tasks are plain data whose places are `storage.Location`s (a file on disk
or in object storage alike), so a plan can be shown (a progress bar counts
them), triaged before any model loads, and sent to a Ray worker as one line
of JSON (`to_row`/`from_row`): the worker rebuilds the same typed task
instead of reading options out of an untyped dict.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from lowlight_cli.settings import VideoSettings
from lowlight_cli.storage import Location


@dataclass(frozen=True)
class PhotoTask:
    """One photo file enhanced into `target`."""

    source: Location
    target: Location
    quality: int | None = None  # JPEG/WebP quality of the output; None: the input's own, else 95


@dataclass(frozen=True)
class VideoTask:
    """One video file or frames folder enhanced into `target` (a video file or a frames folder)."""

    source: Location
    target: Location
    settings: VideoSettings = field(default_factory=VideoSettings)  # its window, smoothing, frames format


Task = PhotoTask | VideoTask


def to_row(task: Task) -> str:
    """The task as one JSON line for a Ray Data block; local places absolute, since a worker has its own
    working directory, and as the user wrote them, which the worker's messages name."""
    fields: dict[str, object] = {"source": os.fspath(task.source), "target": os.fspath(task.target)}
    fields.update(names=[str(task.source), str(task.target)])
    if isinstance(task, PhotoTask):
        fields.update(kind="photo", quality=task.quality)
    else:
        fields.update(kind="video", settings=asdict(task.settings))
    return json.dumps(fields)


def from_row(row: str) -> Task:
    """The task `to_row` wrote."""
    fields = json.loads(row)
    source_name, target_name = fields["names"]
    source = Location.of(fields["source"]).named(source_name)
    target = Location.of(fields["target"]).named(target_name)
    if fields["kind"] == "photo":
        return PhotoTask(source, target, fields["quality"])
    return VideoTask(source, target, VideoSettings(**fields["settings"]))
