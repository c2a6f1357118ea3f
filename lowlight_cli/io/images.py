"""Photo I/O: any common format and mode in, the same kind of file out.

Loading normalises everything to RGB float32 in [0,1] (EXIF rotation applied,
alpha split off, 16-bit precision kept) and remembers what is needed to write
the result back faithfully: bit depth, alpha, EXIF and ICC profile (16-bit
outputs get theirs spliced in by `metadata.py`). Saving is
atomic (temporary file + rename) so an interrupted or failed write never
leaves a partial file, and it refuses to write over the input.
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lowlight_cli.errors import InputError, OutputError
from lowlight_cli.io.metadata import exif_of_tiff, png_with_metadata, tiff_with_metadata

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp"}
SIXTEEN_BIT_SUFFIXES = {".png", ".tif", ".tiff"}
MAX_PIXELS = 200_000_000  # 200 MP: past this, decoding alone would need > 2 GB


@dataclass
class LoadedImage:
    """A decoded photo plus what is needed to save its enhanced version faithfully."""

    rgb: np.ndarray  # float32 H×W×3 in [0, 1], display orientation
    alpha: np.ndarray | None = None  # float32 H×W in [0, 1]
    bit_depth: int = 8
    exif: bytes | None = None
    icc_profile: bytes | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.rgb.shape[1], self.rgb.shape[0]


def supported_formats() -> str:
    return ", ".join(sorted(s.lstrip(".") for s in IMAGE_SUFFIXES))


def load_image(path: str | Path) -> LoadedImage:
    """Decode `path`, raising `InputError` with a one-line reason for anything unusable."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not an image (use `lowlight batch` for folders)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not data:
        raise InputError(f"{path}: file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise InputError(
                    f"{path}: {width}x{height} is {width * height / 1e6:.0f} MP, more than {MAX_PIXELS // 1_000_000} MP; "
                    "refusing to decode it"
                )
            image.load()
    except InputError:
        raise
    except Image.DecompressionBombError:
        raise InputError(f"{path}: declares more than {MAX_PIXELS // 1_000_000} MP; refusing to decode it") from None
    except UnidentifiedImageError:
        raise InputError(f"{path}: not a supported image (supported: {supported_formats()})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: corrupt or truncated image ({exc})") from None
    if image.format and f".{image.format.lower()}" not in IMAGE_SUFFIXES | {".mpo"} and image.format not in {"JPEG", "TIFF"}:
        raise InputError(f"{path}: {image.format} images are not supported (supported: {supported_formats()})")

    exif = image.info.get("exif")
    icc = rgb_profile(image.info.get("icc_profile"))
    source_format = image.format or ""
    if exif is None and source_format == "TIFF":
        exif = exif_of_tiff(image)
    orientation = image.getexif().get(0x0112, 1)
    sixteen = _decode_16bit(data) if source_format in {"PNG", "TIFF"} else None
    if sixteen is not None:
        rgb, alpha = sixteen
        rgb, alpha = _apply_orientation(rgb, orientation), (None if alpha is None else _apply_orientation(alpha, orientation))
        bit_depth = 16
    else:
        image = ImageOps.exif_transpose(image) or image
        rgb, alpha = _to_rgb_float(image)
        bit_depth = 8
    if orientation != 1 and exif:
        exif = _reset_orientation(exif)
    return LoadedImage(rgb=rgb, alpha=alpha, bit_depth=bit_depth, exif=exif, icc_profile=icc)


NON_RGB_ICC_SPACES = {b"CMYK", b"CMY ", b"GRAY", b"Lab ", b"XYZ ", b"YCbr"}  # ICC header bytes 16–20


def rgb_profile(icc: bytes | None) -> bytes | None:
    """`icc` if it may describe RGB pixels, else None.

    A CMYK or grayscale photo's profile describes its source pixels; on the
    RGB output it would make colour-managed viewers misread every pixel, so
    the output is left untagged (viewers then assume sRGB).
    """
    if icc and len(icc) >= 20 and icc[16:20] in NON_RGB_ICC_SPACES:
        return None
    return icc


def _to_rgb_float(image) -> tuple[np.ndarray, np.ndarray | None]:
    """Any Pillow mode → RGB float (+ alpha). CMYK goes through Pillow's conversion."""
    mode = image.mode
    alpha = None
    if mode in {"RGBA", "LA", "PA"} or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        alpha = np.asarray(rgba)[:, :, 3].astype(np.float32) / 255.0
        return np.asarray(rgba.convert("RGB")).astype(np.float32) / 255.0, alpha
    if mode in {"I", "I;16", "I;16B", "I;16L", "F"}:
        values = np.asarray(image).astype(np.float32)
        peak = values.max(initial=0)
        if mode == "F" and peak <= 1.0:  # floating-point TIFFs usually hold 0–1 already
            scale = 1.0
        else:
            scale = 65535.0 if peak > 255 or mode.startswith("I;16") else 255.0
        gray = np.clip(values / scale, 0.0, 1.0)
        return np.repeat(gray[:, :, None], 3, axis=2), None
    return np.asarray(image.convert("RGB")).astype(np.float32) / 255.0, None


def _decode_16bit(data: bytes) -> tuple[np.ndarray, np.ndarray | None] | None:
    """16-bit PNG/TIFF pixels via OpenCV (Pillow reduces 16-bit RGB to 8 bits); None if 8-bit."""
    import cv2

    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None or array.dtype != np.uint16:
        return None
    values = array.astype(np.float32) / 65535.0
    if values.ndim == 2:
        return np.repeat(values[:, :, None], 3, axis=2), None
    if values.shape[2] == 4:
        return np.ascontiguousarray(values[:, :, 2::-1]), values[:, :, 3]
    if values.shape[2] == 1:
        return np.repeat(values, 3, axis=2), None
    return np.ascontiguousarray(values[:, :, 2::-1]), None


def _apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """EXIF orientation (1–8) for arrays decoded outside Pillow."""
    if orientation == 2:
        array = array[:, ::-1]
    elif orientation == 3:
        array = array[::-1, ::-1]
    elif orientation == 4:
        array = array[::-1]
    elif orientation == 5:
        array = np.swapaxes(array, 0, 1)
    elif orientation == 6:
        array = np.rot90(array, -1)
    elif orientation == 7:
        array = np.rot90(np.swapaxes(array, 0, 1), 2)
    elif orientation == 8:
        array = np.rot90(array, 1)
    return np.ascontiguousarray(array)


def _reset_orientation(exif: bytes) -> bytes:
    """EXIF with Orientation = 1, since the pixels are already upright."""
    from PIL import Image

    try:
        parsed = Image.Exif()
        parsed.load(exif)
        parsed[0x0112] = 1
        return parsed.tobytes()
    except Exception:  # malformed EXIF: dropping it is better than re-rotating viewers
        return b""


def _quantise(values: np.ndarray, bits: int) -> np.ndarray:
    peak = 65535.0 if bits == 16 else 255.0
    return (np.clip(values, 0.0, 1.0) * peak + 0.5).astype(np.uint16 if bits == 16 else np.uint8)


def encode_image(rgb: np.ndarray, suffix: str, alpha: np.ndarray | None = None, bit_depth: int = 8,
                 exif: bytes | None = None, icc_profile: bytes | None = None, quality: int = 95) -> bytes:
    """Encode RGB float [0,1] to the format `suffix` names, keeping what that format can hold."""
    from PIL import Image

    suffix = suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise OutputError(f"cannot write '{suffix}' files (supported: {supported_formats()})")
    keep_alpha = alpha is not None and suffix in {".png", ".tif", ".tiff", ".webp"}
    if bit_depth == 16 and suffix in SIXTEEN_BIT_SUFFIXES:
        import cv2

        channels = [_quantise(rgb[:, :, 2], 16), _quantise(rgb[:, :, 1], 16), _quantise(rgb[:, :, 0], 16)]
        if keep_alpha:
            channels.append(_quantise(alpha, 16))
        ok, buffer = cv2.imencode(suffix, np.dstack(channels))
        if not ok:
            raise OutputError(f"OpenCV could not encode a 16-bit {suffix} file")
        if suffix == ".png":
            return png_with_metadata(buffer.tobytes(), exif, icc_profile)
        return tiff_with_metadata(buffer.tobytes(), exif, icc_profile)
    pixels = _quantise(rgb, 8)
    image = Image.fromarray(pixels, "RGB")
    if keep_alpha:
        image.putalpha(Image.fromarray(_quantise(alpha, 8), "L"))
    options: dict = {}
    if icc_profile:
        options["icc_profile"] = icc_profile
    if exif and suffix in {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff"}:
        options["exif"] = exif
    if suffix in {".jpg", ".jpeg"}:
        options.update(quality=quality, subsampling=0 if quality >= 90 else 2)
    elif suffix == ".webp":
        options.update(quality=quality)
    format_name = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF",
                   ".webp": "WEBP", ".bmp": "BMP"}[suffix]
    buffer = io.BytesIO()
    image.save(buffer, format=format_name, **options)
    return buffer.getvalue()


def same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def atomic_write(path: Path, data: bytes, protect: list[Path] | None = None) -> None:
    """Write `data` to `path` via a temporary file in the same folder and an atomic rename.

    `protect` lists files that must never be replaced (the inputs); a partial
    temporary file is removed on any failure, e.g. a full disk.
    """
    path = Path(path)
    for original in protect or []:
        if path.resolve() == Path(original).resolve() or same_file(path, Path(original)):
            raise OutputError(f"{path}: refusing to write over the input file")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{folder}: cannot create output folder ({exc.strerror or exc})") from None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot write here ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise OutputError(f"{path}: write failed ({exc.strerror or exc}); no partial file was left") from None


def save_image(path: str | Path, rgb: np.ndarray, like: LoadedImage | None = None,
               protect: list[Path] | None = None, quality: int = 95) -> None:
    """Encode by extension and write atomically, keeping alpha/bit depth/EXIF/ICC of `like`."""
    path = Path(path)
    data = encode_image(
        rgb, path.suffix, alpha=like.alpha if like else None, bit_depth=like.bit_depth if like else 8,
        exif=like.exif if like else None, icc_profile=like.icc_profile if like else None, quality=quality,
    )
    atomic_write(path, data, protect)
