"""Which files a command works on and where each result goes.

Conventions follow rembg / Real-ESRGAN: `{stem}_enhanced{ext}` beside the
input by default, mirrored sub-folders under an output folder. Nothing is
passed over silently: pictures in a format we cannot read are listed by
`batch`, an `-o` naming a format we cannot write is an error (not a folder
of that name), and two inputs never share one output. A folder and its
output may also be `storage.Location`s in object storage (s3://, gs://…),
listed once and filtered by the same rules. Folders are listed as paths
on disk or `Location`s in a bucket; every task names `Location`s.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import TypeVar, cast

from lowlight_cli.errors import InputError, OutputError, Setting, UsageError
from lowlight_cli.io.images import IMAGE_SUFFIXES, check_writable, default_suffix, is_image_name, supported_formats
from lowlight_cli.run.tasks import PhotoTask, VideoTask
from lowlight_cli.settings import VideoSettings
from lowlight_cli.storage import Location

Place = Path | Location  # a folder or file while listing: on disk, or in object storage
SUFFIX = "_enhanced"
SAME_FORMAT = {".jpeg": ".jpg", ".tiff": ".tif", ".heif": ".heic", ".hif": ".heic"}  # spellings of one format
# Video files `video DIR --ray` picks up: what we write, plus common containers ffmpeg reads (written as .mp4).
VIDEO_INPUT_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mts", ".m2ts", ".ts", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp"}
)
T = TypeVar("T", PhotoTask, VideoTask)


def default_output(source: Path, ext: str | None = None) -> Path:
    """`{stem}_enhanced{ext}`; without `ext`, the input's extension (16-bit `.tif` for camera RAW)."""
    return source.with_name(f"{source.stem}{SUFFIX}{ext or default_suffix(source)}")


def default_folder_output(folder: Path, ext: str = "") -> Path:
    """`<DIR>_enhanced[ext]` beside DIR, resolved first so that `.` and `..` have a name."""
    folder = folder.resolve()
    return folder.with_name(f"{folder.name}{SUFFIX}{ext}")


def default_folder_location(folder: Place) -> Place:
    """`<DIR>_enhanced` beside DIR, for a bucket prefix too."""
    if is_local(folder):
        return default_folder_output(Path(os.fspath(folder)))
    return folder.parent / f"{folder.name}{SUFFIX}"


def in_folder(source: Path, folder: Path, ext: str | None = None) -> Path:
    """Where `source`'s result goes in output folder `folder`: under its own name (the folder says it is
    enhanced, as `batch`'s do), or `{stem}_enhanced` when the folder is the source's own."""
    if folder.resolve() == source.parent.resolve():
        return default_output(source, ext)
    return folder / f"{source.stem}{ext or default_suffix(source)}"


def photo_tasks(
    sources: list[Path], output: Path | None, ext: str | None = None, quality: int | None = None
) -> list[PhotoTask]:
    """`enhance INPUT... [-o OUT]`: OUT is a file for one input, a folder for several.

    An OUT whose extension names a picture format (`photo.heic`, `x.gif`) is
    a file: if we cannot write that format it is an error, never a folder
    created under that name; nor may it name another format than `ext`.
    """
    output_is_file = output is not None and is_image_name(output) and not output.is_dir()
    if output_is_file and output is not None:
        check_writable(output)
        named = output.suffix.lower()
        if ext is not None and SAME_FORMAT.get(named, named) != SAME_FORMAT.get(ext, ext):
            raise UsageError(
                f"-o {output} names a {named} file but the format asked for is {ext}: make them agree, or leave one out"
            )
    if output_is_file and len(sources) > 1:
        raise OutputError(f"-o {output}: with {len(sources)} inputs, -o must be a folder")
    tasks = []
    for source in sources:
        if output is None:
            target = default_output(source, ext)
        elif output_is_file:
            target = output
        else:
            target = in_folder(source, output, ext)
        tasks.append(PhotoTask(Location.of(source), Location.of(target), quality))
    return checked(tasks)


def folder_photo_tasks(
    folder: Place, output: Place, recursive: bool, pattern: str | None, ext: str | None, quality: int | None = None
) -> list[PhotoTask]:
    """`batch DIR -o OUTDIR`: mirrored relative paths, same file names (the folder says they are enhanced);
    `-o DIR` itself puts each result beside its input as `{stem}_enhanced`, as `enhance -o` does (`in_folder`).

    Either may be a `storage.Location` (object storage); the tasks then name `Location`s.
    """
    if isinstance(folder, Location) or isinstance(output, Location):
        folder, output = Location.of(folder), Location.of(output)
        if folder.local and output.local:
            folder, output = folder.as_path(), output.as_path()
    beside = same_place(folder, output)
    tasks = []
    for source in discover(folder, recursive, pattern, exclude=None if beside else output):
        rel = PurePosixPath(relative(source, folder))
        rel = rel.with_suffix(ext or default_suffix(Path(rel.name)))
        target = output / (rel.with_stem(rel.stem + SUFFIX) if beside else rel).as_posix()
        tasks.append(PhotoTask(Location.of(source), Location.of(target), quality))
    return checked(tasks)


def folder_video_tasks(
    folder: Path, output: Path, settings: VideoSettings, recursive: bool = False, pattern: str | None = None
) -> list[VideoTask]:
    """`video DIR -o OUT --ray`: one task per video file (a folder of frames is one video, not this)."""
    from lowlight_cli.io.video import VIDEO_SUFFIXES

    tasks = []
    for source in cast(Sequence[Path], _candidates(folder, recursive, pattern, output)):  # a local folder's: Paths
        if source.suffix.lower() in VIDEO_INPUT_SUFFIXES:
            suffix = source.suffix if source.suffix.lower() in VIDEO_SUFFIXES else ".mp4"
            target = output / source.relative_to(folder).with_suffix(suffix)
            tasks.append(VideoTask(Location.of(source), Location.of(target), settings))
    return checked(tasks)


def video_task(source: Path, output: Path | None, settings: VideoSettings) -> VideoTask:
    """`video INPUT [-o OUT]`: OUT, else `{stem}_enhanced.mp4` beside INPUT (`<DIR>_enhanced.mp4` for a folder)."""
    target = output or (default_folder_output(source, ".mp4") if source.is_dir() else default_output(source, ".mp4"))
    return VideoTask(Location.of(source), Location.of(target), settings)


def checked(tasks: list[T]) -> list[T]:
    """`tasks`, after making sure no two of them write the same file.

    `a.jpg a.png --format jpg`, or two inputs with one name from different
    folders, would otherwise silently keep only the last result.
    """
    targets: dict[Location, T] = {}
    for task in tasks:
        target = task.target.resolve()
        if target in targets:
            raise OutputError(
                f"{targets[target].source} and {task.source} would both be written to {task.target}; "
                "enhance them separately or with different -o"
            )
        targets[target] = task
    return tasks


def _considered(rel: PurePosixPath, pattern: str | None) -> bool:
    """The rules for a file found under a folder: not hidden, not one of our outputs, matching `pattern`
    (on its path relative to the folder, or on its name)."""
    if any(part.startswith(".") for part in rel.parts) or rel.stem.endswith(SUFFIX):
        return False
    return not pattern or fnmatch.fnmatch(rel.as_posix(), pattern) or fnmatch.fnmatch(rel.name, pattern)


def _candidates(folder: Place, recursive: bool, pattern: str | None, exclude: Place | None) -> Sequence[Place]:
    """Files under `folder` that `batch` considers: not hidden, not our outputs, not in `exclude`, matching `pattern`.

    `folder` may be a `storage.Location` in object storage: it is listed once, by the same rules.
    """
    if isinstance(folder, Location) and not folder.local:
        inside = exclude.path.rstrip("/") + "/" if isinstance(exclude, Location) and not exclude.local else None
        return [
            folder / rel
            for rel in folder.list_files(recursive)
            if _considered(PurePosixPath(rel), pattern) and not (inside and (folder / rel).path.startswith(inside))
        ]
    folder = Path(os.fspath(folder))
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    skip = Path(os.fspath(exclude)).resolve() if exclude is not None and is_local(exclude) else None
    found = []
    for path in candidates:
        if not _considered(PurePosixPath(path.relative_to(folder).as_posix()), pattern) or not path.is_file():
            continue
        if skip is not None and path.resolve().is_relative_to(skip):
            continue
        found.append(path)
    return sorted(found)


def same_place(folder: Place, output: Place) -> bool:
    """True when `output` is `folder` itself (however spelt): `batch DIR -o DIR`."""
    return Location.of(output).resolve() == Location.of(folder).resolve()


def is_local(place: Place) -> bool:
    return not isinstance(place, Location) or place.local


def relative(path: Place, folder: Place) -> str:
    """`path` under `folder`, '/'-separated."""
    if isinstance(path, Location):
        return path.relative_to(Location.of(folder))
    return path.relative_to(folder).as_posix()


def discover(folder: Place, recursive: bool, pattern: str | None, exclude: Place | None = None) -> list[Place]:
    """Images under `folder` (by extension, sorted), skipping our own outputs and hidden files.

    `exclude` is the output folder: when it lies inside `folder`, a re-run
    must not take the previous run's results for new inputs.
    """
    return [path for path in _candidates(folder, recursive, pattern, exclude) if path.suffix.lower() in IMAGE_SUFFIXES]


def unsupported_images(folder: Place, recursive: bool, pattern: str | None, exclude: Place | None = None) -> list[str]:
    """Pictures `discover` passes over because we cannot read their format (GIF, JPEG XL…), relative to `folder`.

    `batch` lists them; files that are not pictures at all (sidecars, notes) are not listed.
    """
    return [
        relative(path, folder)
        for path in _candidates(folder, recursive, pattern, exclude)
        if path.suffix.lower() not in IMAGE_SUFFIXES and is_image_name(Path(path.name))
    ]


def describe_unsupported(names: list[str], shown: int = 5) -> str:
    """'2 unsupported files skipped: a.gif, b/c.jxl' (the first `shown` names)."""
    listed = ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")
    return f"{len(names)} unsupported file{'s' if len(names) != 1 else ''} skipped: {listed}"


def no_images_message(folder: Place, recursive: bool, unsupported: list[str]) -> tuple[str, ...]:
    """What `batch` says when it finds nothing to enhance (an error's parts): names what it skipped, if anything."""
    if unsupported:
        return (
            f"{folder}: no supported images; {describe_unsupported(unsupported)} (supported: {supported_formats()})",
        )
    found = f"no images found in {folder}"
    return (found,) if recursive else (found, " (use ", Setting("recursive"), " for sub-folders)")
