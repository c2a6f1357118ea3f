"""The library's units of work: one photo file, a list of them, one video.

Load → enhance → check → write, with everything the CLI's commands promise
(metadata and bit depth kept, the input's own JPEG quality, atomic writes,
never over an input, a model's non-finite output refused with its name).
`enhance` and `batch` drive `enhance_files`; a Ray actor (`ray_batch`)
calls `process_file` per photo. Photos may also live in object storage
(`storage.Location`: s3://, gs://…): read as bytes and decoded from a
scratch copy, encoded the same way and put atomically. The CLI only parses,
builds the settings and prints.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, TypeGuard, cast

import numpy as np

from lowlight_cli.errors import InputError, LowlightError, UsageError, WeightsError
from lowlight_cli.io.images import DEFAULT_QUALITY, LoadedImage, jpeg_quality, load_image, save_image
from lowlight_cli.jobs import Job, JobReport, default_folder_output, default_output, run_jobs
from lowlight_cli.storage import Location

if TYPE_CHECKING:
    from lowlight_cli.io.video import FrameSink, FrameSource
    from lowlight_cli.pipeline import Enhancer, EnhanceResult
    from lowlight_cli.temporal import VideoReport


def check_finite(rgb: np.ndarray, model: str | Path) -> None:
    """Fail with the model's name when its result holds NaN/Inf, which would otherwise be saved as black."""
    finite = np.isfinite(rgb)
    if not finite.all():
        share = 100.0 * float(np.count_nonzero(~finite)) / finite.size
        raise WeightsError(
            f"model {model} produced NaN or infinite values ({share:.3g}% of the output); "
            "the checkpoint is broken or incompatible, nothing was written"
        )


@dataclass
class Photo:
    """A decoded photo and its file's own JPEG quality (None for other formats), which the output keeps."""

    image: LoadedImage
    quality: int | None = None


def load_photo(source: Path | Location) -> Photo:
    """Decode `source`: a path, or a `storage.Location` on disk or in object storage (s3://, gs://…).

    A file in a bucket is read as bytes into a private scratch copy and
    decoded from it by the same code as a local file (the decoders choose by
    name and header); errors name it as the user wrote it.
    """
    if not is_remote_location(source):
        path = Path(os.fspath(source))
        return Photo(load_image(path), jpeg_quality(path))
    data = source.read_bytes()
    if not data:
        raise InputError(f"{source}: file is empty")
    with tempfile.TemporaryDirectory(prefix="lowlight-read-") as scratch:
        copy = Path(scratch) / source.name
        copy.write_bytes(data)
        try:
            return Photo(load_image(copy), jpeg_quality(copy))
        except LowlightError as exc:
            raise type(exc)(str(exc).replace(str(copy), str(source))) from None


def save_result(
    target: Path | Location, rgb: np.ndarray, like: LoadedImage, source: Path | Location, quality: int
) -> None:
    """Write a result atomically, never over `source`: on disk by `save_image`; into object storage by
    encoding it the same way (into a scratch file) and one atomic put (`Location.write_atomic`)."""
    if not is_remote_location(target):
        protect = [] if is_remote_location(source) else [Path(os.fspath(source))]
        save_image(Path(os.fspath(target)), rgb, like=like, protect=protect, quality=quality)
        return
    with tempfile.TemporaryDirectory(prefix="lowlight-write-") as scratch:
        encoded = Path(scratch) / target.name
        try:
            save_image(encoded, rgb, like=like, quality=quality)
        except LowlightError as exc:
            raise type(exc)(str(exc).replace(str(encoded), str(target))) from None
        target.write_atomic(encoded.read_bytes(), protect=[source] if isinstance(source, Location) else [])


def enhance_loaded(
    enhancer: Enhancer,
    image: LoadedImage,
    source: Path | Location,
    target: Path | Location,
    quality: int | None = None,
    own_quality: int | None = None,
    before_write: Callable[[], bool] | None = None,
) -> EnhanceResult | None:
    """Enhance a decoded photo and write it to `target` atomically, never over `source`.

    `quality` (JPEG/WebP) defaults to the input's own (`own_quality`, else
    read from a local `source`), else 95. `before_write` runs after the
    enhancement, right before the write; if it returns False nothing is
    written and None is returned (a Ray worker's last look: was this output
    written meanwhile by another attempt?).
    """
    result = enhancer.enhance(image.rgb)
    check_finite(result.rgb, enhancer.model_name)  # a broken checkpoint must not write black
    if quality is None and own_quality is None and not is_remote_location(source):
        own_quality = jpeg_quality(Path(os.fspath(source)))
    if before_write is not None and not before_write():
        return None
    save_result(target, result.rgb, image, source, quality or own_quality or DEFAULT_QUALITY)
    return result


def process_file(
    enhancer: Enhancer,
    source: Path | Location,
    target: Path | Location,
    quality: int | None = None,
    before_write: Callable[[], bool] | None = None,
) -> EnhanceResult | None:
    """One photo file: load, enhance, check, write atomically. Raises `LowlightError` for a bad file.

    `source` and `target` may be `storage.Location`s in object storage.
    """
    photo = load_photo(source)
    return enhance_loaded(enhancer, photo.image, source, target, quality, photo.quality, before_write)


def enhance_files(
    enhancer: Enhancer | Callable[[], Enhancer] | None,
    jobs: list[Job],
    overwrite: bool,
    quality: int | None = None,
    on_advance: Callable[[Job], None] | None = None,
    on_done: Callable[[Job, LoadedImage, EnhanceResult], None] | None = None,
) -> JobReport:
    """Enhance every pending job (finished outputs skipped unless `overwrite`), decoding the next photo while
    the current one is enhanced; per-file failures are collected in the report. Jobs may name
    `storage.Location`s (object storage) as well as paths.

    `enhancer` is an `Enhancer`, or a function that builds one, called once the first photo has decoded: a
    run whose photos cannot be read fails in milliseconds, without loading a model (None: no job is pending).
    """
    built: list[Enhancer] = []

    def process(job: Job, photo: Photo) -> None:
        if not built:
            try:
                built.append(cast("Enhancer", enhancer() if callable(enhancer) else enhancer))  # None: nothing pending
            except LowlightError as exc:  # a bad setting or model stops the run; it is no one photo's failure
                raise ModelUnavailable from exc
        result = enhance_loaded(built[0], photo.image, job.source, job.target, quality, photo.quality)
        if on_done is not None:
            on_done(job, photo.image, cast("EnhanceResult", result))  # None only with before_write

    try:
        return run_jobs(jobs, lambda job: load_photo(job.source), process, overwrite, on_advance=on_advance)
    except ModelUnavailable as failed:
        raise failed.__cause__ from None  # type: ignore[misc]


class ModelUnavailable(Exception):
    """The enhancer could not be built: carries its `LowlightError` past the per-photo error policy."""


def is_remote_location(place: object) -> TypeGuard[Location]:
    """A `storage.Location` outside the local disk (paths and local locations are written with `save_image`)."""
    return isinstance(place, Location) and not place.local


@dataclass
class VideoJob:
    """An opened video input and its output, ready for `run`; a context manager that closes both."""

    frames: FrameSource
    sink: FrameSink
    target: Path
    total: int | None  # frames to process, when known
    _stack: ExitStack = field(default_factory=ExitStack, repr=False)

    def __enter__(self) -> VideoJob:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def run(
        self, enhancer: Enhancer, on_frame: Callable[[int], None] | None = None, smoothing: float = 0.8
    ) -> VideoReport:
        """Enhance every frame into the output (see `temporal.enhance_video`)."""
        from lowlight_cli.temporal import enhance_video

        return enhance_video(enhancer, self.frames, self.sink, on_frame=on_frame, smoothing=smoothing)


def open_video_job(
    source: Path,
    output: Path | None = None,
    start: float | None = None,
    end: float | None = None,
    max_frames: int | None = None,
    fps: float | None = None,
    frame_format: str | None = None,
    overwrite: bool = False,
) -> VideoJob:
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
        target = output or (
            default_folder_output(source, ".mp4") if source.is_dir() else default_output(source, ".mp4")
        )
        sink = open_sink(target, frames, frame_format, overwrite)
    except BaseException:
        stack.close()
        raise
    total = frames.frame_count if max_frames is None else min(max_frames, frames.frame_count or max_frames)
    return VideoJob(frames, sink, target, total, stack)
