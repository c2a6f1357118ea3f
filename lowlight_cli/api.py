"""The public Python API: `enhance(image)` for one call, `Enhancer` to load once and enhance many.

A thin layer over `lowlight_cli.pipeline.Pipeline`, which works on float32
H×W×3 arrays in [0, 1] only. This layer takes what users actually hold — a
file path, a PIL image, a uint8/uint16/float numpy array, colour or gray —
converts it, and gives the result back as the same kind of object, so that
`enhance(np.asarray(photo))` does what it looks like it does (the pipeline
itself would read a uint8 array as values far outside [0, 1]).

Kinds in → out:

* numpy array → numpy array of the same dtype and shape (H×W gray stays H×W);
* PIL image → PIL image (RGB, RGBA when the input has transparency, L for gray);
* path (str or `os.PathLike`) → PIL image. Nothing is written: the CLI is
  the tool for files (it keeps EXIF, ICC, 16-bit depth and writes atomically).

Options are the CLI's, as keyword arguments (`--work-size 512` →
`work_size=512`): the fields of `lowlight_cli.settings.EnhanceSettings`.
Invalid values raise `ValueError`, unusable inputs `TypeError` or
`ValueError`; a missing or unreadable file raises the package's
`InputError` (a `LowlightError`) with a one-line message.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from lowlight_cli.errors import UsageError
from lowlight_cli.imaging.pixels import quantise
from lowlight_cli.io.images import to_gray
from lowlight_cli.pipeline import Pipeline, build
from lowlight_cli.settings import EnhanceSettings

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

ImageLike = Union[str, "os.PathLike[str]", "PILImage", np.ndarray]

log = logging.getLogger("lowlight_cli")

ACCEPTED = "a file path (str or Path), a PIL image, or a numpy array (uint8, uint16 or float in [0, 1])"


class Enhancer:
    """Load the model and the region prior once, then `enhance()` any number of images.

    >>> enhancer = Enhancer(steps=1, device="cpu")
    >>> brighter = [enhancer.enhance(photo) for photo in photos]

    Keyword arguments are the fields of `lowlight_cli.settings.EnhanceSettings`,
    the CLI's options (`--work-size 512` → `work_size=512`); `settings=` takes
    a whole `EnhanceSettings`. `pipeline` is the underlying
    `lowlight_cli.pipeline.Pipeline` (float arrays in [0, 1] only) for video
    or custom code that needs its stages. `steps` and `seed` may also be
    given per call, so one `Enhancer` serves several.
    """

    def __init__(
        self, model: str | os.PathLike[str] | None = None, *, settings: EnhanceSettings | None = None, **options: Any
    ) -> None:
        if model is not None:  # else `settings.model`, whose default is the bundled model
            options["model"] = os.fspath(model)
        try:
            self.pipeline: Pipeline = build(settings, notify=log.info, **options)
        except UsageError as exc:  # Python callers expect ValueError for a bad argument value
            raise ValueError(str(exc)) from None

    def enhance(self, image: ImageLike, *, steps: int | None = None, seed: int | None = None) -> Any:
        """Enhance `image` and return the result as the same kind of object (see the module docstring);
        `steps` and `seed` default to the settings'."""
        rgb, alpha, restore = to_float_rgb(image)
        try:
            result = self.pipeline.enhance(rgb, steps=steps, seed=seed)
        except UsageError as exc:
            raise ValueError(str(exc)) from None
        return restore(result.rgb, alpha)


def enhance(image: ImageLike, **options: Any) -> Any:
    """Enhance one image in one call: `enhance(photo, steps=1, exposure=0.5)`.

    Loads the model on every call; use `Enhancer` for more than a few images.
    """
    return Enhancer(**options).enhance(image)


def to_float_rgb(image: Any):
    """(float32 H×W×3 in [0,1], alpha or None, function turning a float result back into `image`'s kind)."""
    if isinstance(image, (str, os.PathLike)):
        return _from_path(Path(image))
    if isinstance(image, np.ndarray):
        return _from_array(image)
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency
        Image = None  # type: ignore[assignment]  # a module or None: mypy types the name as the module
    if Image is not None and isinstance(image, Image.Image):
        return _from_pil(image)
    raise TypeError(f"cannot enhance a {type(image).__module__}.{type(image).__qualname__}: pass {ACCEPTED}")


def _from_path(path: Path):
    from lowlight_cli.io.images import load_image

    loaded = load_image(path)  # EXIF rotation applied, 16-bit kept until the result is made 8-bit
    return loaded.rgb, loaded.alpha, _to_pil_rgb


def _from_array(array: np.ndarray):
    if array.dtype == np.uint8:
        values, peak = array.astype(np.float32) / 255.0, 255
    elif array.dtype == np.uint16:
        values, peak = array.astype(np.float32) / 65535.0, 65535
    elif np.issubdtype(array.dtype, np.floating):
        values, peak = array.astype(np.float32), None
        if values.size and not np.isfinite(values).all():
            raise ValueError("the float array holds NaN or infinity; values must be finite and in [0, 1]")
        if values.size and (values.min() < 0.0 or values.max() > 1.0):
            raise ValueError(
                f"float arrays must hold values in [0, 1], got {values.min():g}..{values.max():g} "
                "(divide 8-bit values by 255)"
            )
    else:
        raise TypeError(f"numpy arrays of dtype {array.dtype} are not supported: use uint8, uint16 or float in [0, 1]")
    gray = array.ndim == 2
    if not (gray or (array.ndim == 3 and array.shape[2] == 3)) or 0 in array.shape:
        raise ValueError(f"expected an H×W×3 colour or H×W gray array, got shape {array.shape}")
    rgb = np.repeat(values[:, :, None], 3, axis=2) if gray else values

    def restore(result: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
        out = to_gray(result) if gray else result
        if peak is None:
            return np.clip(out, 0.0, 1.0).astype(array.dtype)
        return quantise(out, 16 if peak == 65535 else 8)

    return np.ascontiguousarray(rgb), None, restore


def _from_pil(image: PILImage):
    from PIL import Image

    if image.mode in {"I;16", "I;16L", "I;16B", "I"}:  # 16-bit gray: Pillow's convert("RGB") would clip it
        values = np.asarray(image)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ValueError(f"a mode-{image.mode} image must hold values in 0..65535")
        rgb, _, restore = _from_array(values.astype(np.uint16))
        return rgb, None, lambda result, alpha: Image.fromarray(restore(result, None))
    if image.mode == "F":
        rgb, _, restore = _from_array(np.asarray(image, np.float32))
        return rgb, None, lambda result, alpha: Image.fromarray(restore(result, None))
    transparent = image.mode in {"RGBA", "LA", "PA", "La", "RGBa"} or "transparency" in image.info
    if transparent:
        rgba = np.asarray(image.convert("RGBA"), np.float32) / 255.0
        return np.ascontiguousarray(rgba[:, :, :3]), rgba[:, :, 3], _to_pil_rgb
    if image.mode in {"L", "1"}:
        rgb, _, restore = _from_array(np.asarray(image.convert("L")))
        return rgb, None, lambda result, alpha: Image.fromarray(restore(result, None))
    return np.asarray(image.convert("RGB"), np.float32) / 255.0, None, _to_pil_rgb


def _to_pil_rgb(result: np.ndarray, alpha: np.ndarray | None) -> PILImage:
    """8-bit RGB, or RGBA with the input's own transparency."""
    from PIL import Image

    pixels = quantise(result)
    if alpha is None:
        return Image.fromarray(pixels)
    return Image.fromarray(np.dstack([pixels, quantise(alpha)]))
