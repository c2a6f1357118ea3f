"""One photo task: read, enhance, check, write; the same steps on every executor.

Everything the commands promise about a photo's output lives here: metadata
and bit depth kept, the input's own JPEG quality, a model's non-finite
output refused with its name. Where the bytes come from and how they are
written (atomically, never over the input, on disk or in a bucket) is
`storage.Location`'s. Reading and enhancing are separate steps so that an
executor can decode the next photo while the current one is enhanced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lowlight_cli.errors import WeightsError
from lowlight_cli.io.images import DEFAULT_QUALITY, LoadedImage, decode_image, encode_like, jpeg_quality, load_image
from lowlight_cli.run.tasks import PhotoTask
from lowlight_cli.storage import Location

if TYPE_CHECKING:
    from lowlight_cli.pipeline import EnhanceResult, Pipeline


@dataclass
class Photo:
    """A decoded photo and its file's own JPEG quality (None for other formats), which the output keeps."""

    image: LoadedImage
    quality: int | None = None


def read_photo(source: Location) -> Photo:
    """Decode `source`, on disk or in object storage; errors name it as the user wrote it."""
    if source.local:
        path = source.as_path()  # absolute, as the plan saw it: the working directory may have changed since
        return Photo(load_image(path, name=str(source)), jpeg_quality(path))
    data = source.read_bytes()
    return Photo(decode_image(data, str(source)), jpeg_quality(data))


def check_finite(rgb: np.ndarray, model: str | Path) -> None:
    """Fail with the model's name when its result holds NaN/Inf, which would otherwise be saved as black."""
    finite = np.isfinite(rgb)
    if not finite.all():
        share = 100.0 * float(np.count_nonzero(~finite)) / finite.size
        raise WeightsError(
            f"model {model} produced NaN or infinite values ({share:.3g}% of the output); "
            "the checkpoint is broken or incompatible, nothing was written"
        )


def enhance_photo(
    pipeline: Pipeline, task: PhotoTask, photo: Photo, before_write: Callable[[], bool] | None = None
) -> EnhanceResult | None:
    """Enhance a decoded photo and write it to the task's target; the result, or None if not written.

    The output's JPEG/WebP quality is the task's, else the input's own, else
    95. `before_write` runs after the enhancement, right before the write; if
    it returns False nothing is written (a Ray worker's last look: was this
    output written meanwhile by another attempt?).
    """
    result = pipeline.enhance(photo.image.rgb)
    check_finite(result.rgb, pipeline.model_name)  # a broken checkpoint must not write black
    if before_write is not None and not before_write():
        return None
    quality = task.quality or photo.quality or DEFAULT_QUALITY
    task.target.write_atomic(encode_like(result.rgb, str(task.target), photo.image, quality), protect=[task.source])
    return result
