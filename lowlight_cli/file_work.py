"""`batch` over `storage.Location`s: which files, and the unit of work of one file, local or in a bucket.

The same three steps as the local `batch` — decode, enhance, encode and
write atomically — with the input read as bytes from wherever it lives and
the output written through `Location.write_atomic`. The encoder, the
metadata kept, the quality rule and the finite-output check are the local
batch's own (`io.images`, `jobs`), so a bucket gets the same bytes a disk
would. `ray_batch` runs this unit inside Ray actors; the local batch runs it
through `jobs.run_jobs`, which a `Location` drives like a `Path`.
"""

from __future__ import annotations

import fnmatch
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from lowlight_cli.errors import InputError, LowlightError, OutputError, UsageError
from lowlight_cli.io.images import IMAGE_SUFFIXES, LoadedImage, default_suffix, is_image_name
from lowlight_cli.jobs import SUFFIX, Job, JobReport, checked, default_folder_output
from lowlight_cli.storage import Location

DEFAULT_QUALITY = 95  # JPEG/WebP quality when the input's own cannot be read (as the CLI's enhance_one)


@dataclass
class Decoded:
    image: LoadedImage
    quality: int | None  # the input JPEG's own quality, None for other formats


def output_folder(folder: Location, output: Location | None) -> Location:
    """`-o`, or `<DIR>_enhanced` beside DIR (for a bucket prefix too)."""
    if output is not None:
        return output
    if folder.local:
        return Location.of(default_folder_output(folder.as_path()))
    return folder.parent / f"{folder.name}{SUFFIX}"


def plan_folder(folder: Location, output: Location, recursive: bool, pattern: str | None,
                ext: str | None) -> tuple[list[Job], list[str]]:
    """`batch DIR -o OUT` for any locations: the jobs (mirrored relative paths) and the unsupported pictures.

    Local folders go through `jobs.jobs_for_folder` itself; a bucket prefix
    is listed once and filtered by the same rules (hidden files, our own
    `_enhanced` outputs, `--glob` on the relative path or the name, never
    inside the output folder).
    """
    if output == folder:
        raise UsageError("-o must differ from the input folder (inputs are never overwritten)")
    if folder.local:
        from lowlight_cli.jobs import jobs_for_folder, unsupported_images

        base, out = folder.as_path(), (output.as_path() if output.local else None)
        local_jobs = jobs_for_folder(base, out or base / ".lowlight-unused", recursive, pattern, ext)
        jobs = [Job(Location.of(job.source), output / job.source.relative_to(base).with_suffix(job.target.suffix).as_posix())
                for job in local_jobs]
        return checked(jobs), unsupported_images(base, recursive, pattern, exclude=out)
    jobs, unsupported = [], []
    inside = output.path.startswith(folder.path.rstrip("/") + "/")
    for rel in folder.list_files(recursive):
        name = PurePosixPath(rel)
        if any(part.startswith(".") for part in name.parts) or name.stem.endswith(SUFFIX):
            continue
        if inside and (folder / rel).path.startswith(output.path.rstrip("/") + "/"):
            continue
        if pattern and not fnmatch.fnmatch(rel, pattern) and not fnmatch.fnmatch(name.name, pattern):
            continue
        if name.suffix.lower() in IMAGE_SUFFIXES:
            jobs.append(Job(folder / rel, output / name.with_suffix(ext or default_suffix(Path(name.name))).as_posix()))
        elif is_image_name(Path(name.name)):
            unsupported.append(rel)
    return checked(jobs), unsupported


def jpeg_quality(path: Path) -> int | None:
    """The input JPEG's own quality, estimated from its quantisation tables (the local batch's rule)."""
    try:
        from lowlight_cli.io.images import jpeg_quality as estimate
    except ImportError:  # before issue 20 moved it into the library
        from lowlight_cli.cli import jpeg_quality as estimate

    return estimate(path)


def check_finite(rgb: Any, model_name: str) -> None:
    try:
        from lowlight_cli.work import check_finite as check
    except ImportError:  # before issue 20 moved it into the library's unit of work
        from lowlight_cli.jobs import check_finite as check

    check(rgb, model_name)


def decode(source: Location) -> Decoded:
    """Read and decode `source`; errors are one line naming it as the user wrote it.

    A file in a bucket is read as bytes and decoded from a private scratch
    copy (the decoders pick formats by name), never passed on decoded.
    """
    from lowlight_cli.io.images import load_image

    if source.local:
        return Decoded(load_image(source.path), jpeg_quality(Path(source.path)))
    data = source.read_bytes()
    if not data:
        raise InputError(f"{source}: file is empty")
    with tempfile.TemporaryDirectory(prefix="lowlight-read-") as scratch:
        copy = Path(scratch) / source.name
        copy.write_bytes(data)
        try:
            return Decoded(load_image(copy), jpeg_quality(copy))
        except LowlightError as exc:
            raise type(exc)(str(exc).replace(str(copy), str(source))) from None


def encode(rgb: Any, target: Location, like: LoadedImage, quality: int) -> bytes:
    """The output file's bytes, by `target`'s extension, with `like`'s alpha, depth and metadata."""
    from lowlight_cli.io.images import check_writable, encode_image

    check_writable(Path(target.name))
    try:
        return encode_image(rgb, target.suffix, alpha=like.alpha, bit_depth=like.bit_depth, exif=like.exif,
                            icc_profile=like.icc_profile, quality=quality, xmp=like.xmp, text=like.text)
    except OutputError as exc:
        raise OutputError(f"{target}: {exc}") from None


def enhance_file(enhancer: Any, job: Job, decoded: Decoded, quality: int | None = None,
                 model_name: str = "in use", before_write: Callable[[], bool] | None = None) -> bool:
    """Enhance one decoded file and write its result atomically; False if `before_write` said not to write.

    `before_write` runs after the (slow) enhancement, right before the write:
    Ray may hand a file out twice, and this is the last moment to notice
    that its output appeared meanwhile.
    """
    result = enhancer.enhance(decoded.image.rgb)
    check_finite(result.rgb, model_name)  # a broken checkpoint must not write black
    data = encode(result.rgb, Location.of(job.target), decoded.image,
                  quality or decoded.quality or DEFAULT_QUALITY)
    if before_write is not None and not before_write():
        return False
    Location.of(job.target).write_atomic(data, protect=[Location.of(job.source)])
    return True


def run_local(jobs: list[Job], enhancer: Any, overwrite: bool, quality: int | None = None,
              on_advance: Callable[[Job], None] | None = None, model_name: str = "in use") -> JobReport:
    """The local batch over `Location` jobs: `jobs.run_jobs` (prefetching decode, skip, collect failures)."""
    from lowlight_cli.jobs import run_jobs

    return run_jobs(jobs, lambda job: decode(Location.of(job.source)),
                    lambda job, decoded: enhance_file(enhancer, job, decoded, quality, model_name),
                    overwrite, on_advance=on_advance)


def as_location_jobs(jobs: list[Job]) -> list[Job]:
    return [Job(Location.of(os.fspath(job.source) if not isinstance(job.source, Location) else job.source),
                Location.of(os.fspath(job.target) if not isinstance(job.target, Location) else job.target))
            for job in jobs]


# Video files `video DIR --ray` picks up: what we write, plus common containers ffmpeg reads (written as .mp4).
VIDEO_INPUT_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mts", ".m2ts", ".ts", ".mpg",
                                  ".mpeg", ".wmv", ".flv", ".3gp"})


def plan_videos(folder: Path, output: Path, recursive: bool = False, pattern: str | None = None) -> list[Job]:
    """`video DIR -o OUT --ray`: one job per video file (a folder of frames is one video, not this)."""
    from lowlight_cli.io.video import VIDEO_SUFFIXES
    from lowlight_cli.jobs import _candidates

    jobs = []
    for source in _candidates(folder, recursive, pattern, output):
        if source.suffix.lower() in VIDEO_INPUT_SUFFIXES:
            rel = source.relative_to(folder)
            suffix = source.suffix if source.suffix.lower() in VIDEO_SUFFIXES else ".mp4"
            jobs.append(Job(Location.of(source), Location.of(output / rel.with_suffix(suffix))))
    return checked(jobs)
