"""Photo I/O: any common format and mode in, the same kind of file out.

Loading normalises everything to RGB float32 in [0,1] (EXIF rotation applied,
alpha split off, 16-bit precision kept) and remembers what is needed to write
the result back faithfully: bit depth, alpha, EXIF, ICC profile, XMP and PNG
text chunks (16-bit outputs get theirs spliced in by `metadata.py`). Saving is
atomic (temporary file + rename) so an interrupted or failed write never
leaves a partial file, and it refuses to write over the input.

Beyond what Pillow reads itself: HEIC/HEIF through pillow-heif (AVIF is
Pillow's own), camera RAW through rawpy/LibRaw (demosaiced to 16-bit sRGB
with the camera's white balance) and floating-point TIFF through tifffile.
Nothing is dropped silently: a multi-page TIFF or an animated image is
refused, since only one picture would be enhanced.
"""

from __future__ import annotations

import functools
import io
import mimetypes
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np

from lowlight_cli.errors import InputError, OutputError
from lowlight_cli.imaging.colour import REC709, luma
from lowlight_cli.imaging.pixels import quantise
from lowlight_cli.io.atomic import commit, discard, temporary_beside
from lowlight_cli.io.metadata import (
    exif_of_tiff,
    exif_of_tiff_bytes,
    png_text_chunks,
    png_with_metadata,
    tiff_with_metadata,
)

BASE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp"}
HEIF_SUFFIXES = {".heic", ".heif", ".hif"}
AVIF_SUFFIXES = {".avif"}
# Camera RAW that LibRaw demosaics; never written (a RAW output would claim sensor data it is not).
RAW_SUFFIXES = {".dng", ".cr2", ".cr3", ".nef", ".nrw", ".arw", ".raf", ".orf", ".rw2", ".pef", ".srw"}
IMAGE_SUFFIXES = BASE_SUFFIXES | HEIF_SUFFIXES | AVIF_SUFFIXES | RAW_SUFFIXES  # what `load_image` reads
SIXTEEN_BIT_SUFFIXES = {".png", ".tif", ".tiff"}
FLOAT_SUFFIXES = {".tif", ".tiff"}
# Extensions that name pictures we cannot read: listed as skipped by `batch`, refused as `-o` targets.
OTHER_IMAGE_SUFFIXES = {
    ".gif",
    ".apng",
    ".jxl",
    ".jp2",
    ".j2k",
    ".jpx",
    ".jpe",
    ".jfif",
    ".ico",
    ".icns",
    ".psd",
    ".psb",
    ".xcf",
    ".kra",
    ".exr",
    ".hdr",
    ".svg",
    ".tga",
    ".pbm",
    ".pgm",
    ".ppm",
    ".pnm",
    ".pcx",
    ".dds",
    ".qoi",
    ".dib",
    ".eps",
    ".crw",
    ".mrw",
    ".x3f",
    ".3fr",
    ".iiq",
    ".mos",
    ".kdc",
    ".erf",
    ".sr2",
    ".srf",
}
PILLOW_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".heic": "HEIF",
    ".heif": "HEIF",
    ".hif": "HEIF",
    ".avif": "AVIF",
}
READABLE_FORMATS = {"JPEG", "MPO", "PNG", "TIFF", "WEBP", "BMP", "HEIF", "AVIF"}
if TYPE_CHECKING:
    from PIL.PngImagePlugin import PngImageFile

XmpLike = TypeVar("XmpLike", "bytes | None", str)  # an XMP packet as bytes, or as a PNG text value
MAX_PIXELS = 200_000_000  # 200 MP: past this, decoding alone would need > 2 GB
FLOAT_TOLERANCE = 1.01  # float pixels up to this are rounding overshoot, clipped to 1; more is HDR


@dataclass
class LoadedImage:
    """A decoded photo plus what is needed to save its enhanced version faithfully."""

    rgb: np.ndarray  # float32 H×W×3 in [0, 1], display orientation
    alpha: np.ndarray | None = None  # float32 H×W in [0, 1]
    bit_depth: int = 8
    exif: bytes | None = None
    icc_profile: bytes | None = None
    xmp: bytes | None = None
    text: dict[str, str] | None = None  # PNG tEXt/zTXt/iTXt chunks (Author, Comment, XMP…), kept for PNG outputs
    raw: bool = False  # decoded from camera RAW: written as 16-bit TIFF unless asked otherwise
    gray: bool = False  # a one-channel photo: its result is written as one channel too (`to_gray`)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.rgb.shape[1], self.rgb.shape[0]


def supported_formats() -> str:
    """Readable extensions, for error messages (RAW grouped, to keep the line short)."""
    plain = ", ".join(sorted(s.lstrip(".") for s in IMAGE_SUFFIXES - RAW_SUFFIXES))
    return f"{plain}, camera RAW ({', '.join(sorted(s.lstrip('.') for s in RAW_SUFFIXES))})"


@functools.cache
def _heif_plugin() -> ModuleType | None:
    """pillow_heif with its Pillow opener registered, or None when it is not installed."""
    try:
        import pillow_heif
    except ImportError:
        return None
    pillow_heif.register_heif_opener()
    return pillow_heif


@functools.cache
def writable_suffixes() -> frozenset[str]:
    """Extensions `encode_image` can write here: HEIC needs pillow-heif's encoder, AVIF a Pillow built with libavif."""
    from PIL import features

    suffixes = set(BASE_SUFFIXES)
    plugin = _heif_plugin()
    if plugin is not None and plugin.libheif_info().get("encoders", {}).get("x265"):
        suffixes |= HEIF_SUFFIXES
    if features.check("avif"):
        suffixes |= AVIF_SUFFIXES
    return frozenset(suffixes)


def writable_formats() -> str:
    """Writable extensions, for error messages."""
    return ", ".join(sorted(s.lstrip(".") for s in writable_suffixes()))


def is_image_name(path: Path) -> bool:
    """Whether `path`'s extension names a picture, readable or not (`photo.gif`, `x.heic`, `y.jxl`)."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES | OTHER_IMAGE_SUFFIXES:
        return True
    guessed = mimetypes.guess_type(f"x{suffix}")[0] if suffix else None
    return bool(guessed and guessed.startswith("image/"))


def check_writable(path: str | Path) -> None:
    """Raise `OutputError` when `path` (a path or URL) names a picture format we cannot write (so it is not
    taken for a folder)."""
    suffix = os.path.splitext(str(path))[1].lower()
    if suffix in writable_suffixes():
        return
    if suffix in RAW_SUFFIXES:
        raise OutputError(
            f"{path}: camera RAW ({suffix}) cannot be written; choose one of {writable_formats()} "
            "(RAW photos default to 16-bit .tif)"
        )
    if is_image_name(Path(f"x{suffix}")):
        raise OutputError(f"{path}: cannot write {suffix} files (writable: {writable_formats()})")


def default_suffix(source: Path) -> str:
    """The output extension when none is asked for: the input's, 16-bit TIFF for RAW, PNG if we cannot write it."""
    suffix = source.suffix.lower()
    if suffix in RAW_SUFFIXES:
        return ".tif"
    return source.suffix if suffix in writable_suffixes() else ".png"


SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"II*\x00", b"MM\x00*", b"GIF8", b"BM")


def _has_image_signature(data: bytes) -> bool:
    """Whether `data` starts as a JPEG, PNG, TIFF, GIF, BMP or WebP file does."""
    return data.startswith(SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def load_image(path: str | Path, name: str | None = None) -> LoadedImage:
    """Decode `path`, raising `InputError` with a one-line reason for anything unusable; messages name it
    `name` (as the user wrote it, where `path` is absolute), else `path`."""
    path = Path(path)
    shown = name or str(path)
    if not path.exists():
        raise InputError(f"{shown}: file not found")
    if path.is_dir():
        raise InputError(f"{shown}: is a folder, not an image (use `lowlight batch` for folders)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{shown}: cannot read ({exc.strerror or exc})") from None
    return decode_image(data, shown)


def decode_image(data: bytes, name: str | Path) -> LoadedImage:
    """Decode a file's bytes; `name` (a path or a URL, as the user wrote it) gives the extension and names it
    in errors. Files in object storage are decoded from their bytes by the same code as files on disk."""
    if not data:
        raise InputError(f"{name}: file is empty")
    if os.path.splitext(str(name))[1].lower() in RAW_SUFFIXES:
        return _load_raw(name, data)
    if data[:4] in TIFF_MAGIC:
        tiff = _load_tiff_specials(name, data)
        if tiff is not None:
            return tiff
    if data[4:8] == b"ftyp":  # ISO base media: HEIC/HEIF (pillow-heif) or AVIF (Pillow itself)
        _heif_plugin()
    return _from_pillow(data, _open_pillow(name, data))


def _open_pillow(path: str | Path, data: bytes):
    """The decoded Pillow image of `data`: size-checked before decoding, one still image of a readable format."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise InputError(
                    f"{path}: {width}x{height} is {width * height / 1e6:.0f} MP, "
                    f"more than {MAX_PIXELS // 1_000_000} MP; refusing to decode it"
                )
            image.load()
    except InputError:
        raise
    except Image.DecompressionBombError:
        raise InputError(f"{path}: declares more than {MAX_PIXELS // 1_000_000} MP; refusing to decode it") from None
    except UnidentifiedImageError:
        hint = (
            " (HEIC needs pillow-heif: pip install pillow-heif)" if _is_heif_brand(data) and not _heif_plugin() else ""
        )
        if _has_image_signature(data):  # a known format's first bytes, then nothing Pillow can parse
            raise InputError(f"{path}: corrupt or truncated image") from None
        raise InputError(
            f"{path}: not a supported image: its contents match none of the formats we read{hint} "
            f"(supported: {supported_formats()})"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: corrupt or truncated image ({exc})") from None
    if image.format and image.format not in READABLE_FORMATS:
        raise InputError(f"{path}: {image.format} images are not supported (supported: {supported_formats()})")
    frames = getattr(image, "n_frames", 1) if image.format in {"PNG", "WEBP", "HEIF", "AVIF"} else 1
    if frames > 1:
        raise InputError(
            f"{path}: holds {frames} images (animated or a burst); only single-image files are "
            "enhanced, so nothing would be silently dropped: extract the frames first"
        )
    return image


def _from_pillow(data: bytes, image) -> LoadedImage:
    """Pixels (16-bit through OpenCV where Pillow would reduce them), upright, with the metadata to keep."""
    from PIL import ImageOps

    exif = image.info.get("exif")
    icc = rgb_profile(image.info.get("icc_profile"))
    xmp = _as_bytes(image.info.get("xmp"))
    text = _png_text(image) if image.format == "PNG" else None
    source_format = image.format or ""
    if exif is None and source_format == "TIFF":
        exif = exif_of_tiff(image)
    orientation = image.getexif().get(0x0112, 1)
    gray = image.mode in GRAY_MODES
    sixteen = _decode_16bit(data) if source_format in {"PNG", "TIFF"} else None
    if sixteen is not None:
        rgb, alpha = sixteen
        rgb, alpha = (
            _apply_orientation(rgb, orientation),
            (None if alpha is None else _apply_orientation(alpha, orientation)),
        )
        bit_depth = 16
    else:
        image = ImageOps.exif_transpose(image) or image
        rgb, alpha = _to_rgb_float(image)
        bit_depth = 8
    if orientation != 1:
        exif = _reset_orientation(exif) if exif else exif
        xmp = _reset_xmp_orientation(xmp)
        if text:
            text = {
                key: _reset_xmp_orientation(value) if key == XMP_KEY else value
                for key, value in text.items()
                if key not in STALE_EXIF_TEXT
            }
    return LoadedImage(
        rgb=rgb, alpha=alpha, bit_depth=bit_depth, exif=exif, icc_profile=icc, xmp=xmp, text=text, gray=gray
    )


# Adobe Deflate (zlib), which every TIFF reader opens, tifffile without imagecodecs too (OpenCV's default, LZW,
# needs imagecodecs there).
TIFF_DEFLATE = [259, 8]  # cv2.IMWRITE_TIFF_COMPRESSION, COMPRESSION_ADOBE_DEFLATE
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N"}  # Pillow's one-channel modes (alpha aside)


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """H×W×3 → H×W: how a gray photo's (colour) result becomes one channel again (Rec.709 weights)."""
    return luma(rgb, REC709)


TIFF_MAGIC = {b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"}
XMP_KEY = "XML:com.adobe.xmp"
STALE_EXIF_TEXT = {"Raw profile type exif", "Raw profile type APP1"}  # ImageMagick's EXIF copies, orientation and all


def _as_bytes(value: str | bytes | None) -> bytes | None:
    if not value:
        return None
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _is_heif_brand(data: bytes) -> bool:
    return data[4:8] == b"ftyp" and data[8:12] in {
        b"heic",
        b"heix",
        b"hevc",
        b"hevx",
        b"heim",
        b"heis",
        b"mif1",
        b"msf1",
    }


def _png_text(image: PngImageFile) -> dict[str, str] | None:
    """A PNG's text chunks, keeping iTXt's language and translated key (Pillow's `iTXt` str subclass)."""
    try:
        text = dict(image.text)
    except Exception:  # a malformed text chunk: the pixels matter more
        return None
    return text or None


def _reset_xmp_orientation(xmp: XmpLike) -> XmpLike:
    """XMP (bytes or str) with tiff:Orientation = 1, since the pixels were turned upright."""
    if not xmp:
        return xmp
    data = xmp.encode("utf-8") if isinstance(xmp, str) else xmp
    data = re.sub(rb'(tiff:Orientation=")[2-8](")', rb"\g<1>1\g<2>", data)
    data = re.sub(rb"(<tiff:Orientation>)[2-8](</tiff:Orientation>)", rb"\g<1>1\g<2>", data)
    if not isinstance(xmp, str):
        return data
    from PIL.PngImagePlugin import iTXt

    decoded = data.decode("utf-8")
    # Pillow types iTXt.lang/tkey as str | bytes | None but its constructor's as str | None; read ones are str.
    return iTXt(decoded, xmp.lang, xmp.tkey) if isinstance(xmp, iTXt) else decoded  # type: ignore[arg-type]


def _load_raw(path: str | Path, data: bytes) -> LoadedImage:
    """Camera RAW via LibRaw: demosaic with the camera's white balance to 16-bit sRGB, as exposed.

    LibRaw's auto-brightening is off: the photo stays as dark as it was shot,
    so that the model (not the RAW converter) decides how to brighten it.
    The sRGB transfer curve (2.4, 12.92) matches what the model was trained on.
    """
    try:
        import rawpy
    except ImportError:
        raise InputError(f"{path}: camera RAW needs rawpy (pip install rawpy)") from None
    try:
        with rawpy.imread(io.BytesIO(data)) as raw:
            width, height = raw.sizes.width, raw.sizes.height
            if width * height > MAX_PIXELS:
                raise InputError(
                    f"{path}: {width}x{height} is {width * height / 1e6:.0f} MP, more than "
                    f"{MAX_PIXELS // 1_000_000} MP; refusing to decode it"
                )
            pixels = raw.postprocess(
                use_camera_wb=True,
                output_color=rawpy.ColorSpace.sRGB,
                output_bps=16,
                no_auto_bright=True,
                gamma=(2.4, 12.92),
            )
    except InputError:
        raise
    except (rawpy.LibRawError, OSError, ValueError) as exc:
        reason = str(exc) or type(exc).__name__
        raise InputError(f"{path}: not a camera RAW file LibRaw can read ({reason})") from None
    exif = exif_of_tiff_bytes(data, orientation=False)  # LibRaw has turned the pixels upright already
    return LoadedImage(rgb=pixels.astype(np.float32) / 65535.0, bit_depth=16, exif=exif, raw=True)


def _load_tiff_specials(path: str | Path, data: bytes) -> LoadedImage | None:
    """Refuse multi-page TIFFs, decode floating-point ones; None for a TIFF that Pillow should decode.

    Reduced-resolution pages (previews, NewSubfileType bit 0) are not pages of the photo and do not count.
    """
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            pages = [page for page in tif.pages if not (getattr(page, "subfiletype", 0) or 0) & 1]
            if len(pages) > 1:
                raise InputError(
                    f"{path}: multi-page TIFF ({len(pages)} pages); only single-page TIFFs are "
                    "enhanced, so nothing would be silently dropped: split it first "
                    "(e.g. `tiffsplit` or `magick in.tif page_%d.tif`)"
                )
            if not pages or pages[0].dtype is None or pages[0].dtype.kind != "f":
                return None
            page = pages[0]
            if page.shape and page.shape[0] * (page.shape[1] if len(page.shape) > 1 else 1) > MAX_PIXELS:
                raise InputError(f"{path}: more than {MAX_PIXELS // 1_000_000} MP; refusing to decode it")
            try:
                values = page.asarray()
            except Exception as exc:  # e.g. LZW or JPEG-XR without imagecodecs
                if page.samplesperpixel == 1:
                    return None  # Pillow (libtiff) decodes single-channel float itself
                reason = re.sub(r"<[^>]*>\s*", "", str(exc)).strip() or type(exc).__name__
                raise InputError(
                    f"{path}: floating-point TIFF with {page.compression.name} compression cannot be "
                    f"decoded here ({reason}; pip install imagecodecs)"
                ) from None
            photometric, planar = int(page.photometric), int(page.planarconfig)
            orientation = int(page.tags[274].value) if 274 in page.tags else 1
            icc = bytes(page.tags[34675].value) if 34675 in page.tags else None
            xmp = bytes(page.tags[700].value) if 700 in page.tags else None
    except InputError:
        raise
    except Exception:  # not parseable by tifffile: Pillow says why
        return None
    return _float_tiff(path, data, values, photometric, planar, orientation, icc, xmp)


def _float_tiff(
    path: str | Path,
    data: bytes,
    values: np.ndarray,
    photometric: int,
    planar: int,
    orientation: int,
    icc: bytes | None,
    xmp: bytes | None,
) -> LoadedImage:
    """Floating-point TIFF pixels, read as-is: values in [0, 1] are the display-referred levels (not linearised)."""
    if values.ndim == 3 and planar == 2:
        values = np.moveaxis(values, 0, -1)
    if values.ndim == 2:
        values = values[:, :, None]
    channels = values.shape[2] if values.ndim == 3 else 0
    if photometric not in {1, 2} or values.ndim != 3 or channels not in {1, 2, 3, 4}:
        raise InputError(
            f"{path}: floating-point TIFF with photometric {photometric} and {channels} samples per pixel "
            "is not supported (floating-point TIFF must be gray or RGB, optionally with alpha)"
        )
    values = values.astype(np.float32)
    if not np.isfinite(values).all():
        raise InputError(f"{path}: floating-point TIFF holds NaN or infinite pixels")
    colour = values[:, :, :3] if channels >= 3 else np.repeat(values[:, :, :1], 3, axis=2)
    peak = float(colour.max(initial=0.0))
    if peak > FLOAT_TOLERANCE or float(colour.min(initial=0.0)) < -0.01:
        raise InputError(
            f"{path}: floating-point TIFF with values from {colour.min():g} to {peak:g}; only values "
            "in [0, 1] (display-referred) are supported, not HDR or scene-linear data above 1"
        )
    alpha = values[:, :, -1] if channels in {2, 4} else None
    rgb = _apply_orientation(np.clip(colour, 0.0, 1.0), orientation)
    alpha = None if alpha is None else _apply_orientation(np.clip(alpha, 0.0, 1.0), orientation)
    exif = exif_of_tiff_bytes(data, orientation=False)
    if orientation != 1:
        xmp = _reset_xmp_orientation(xmp)
    return LoadedImage(
        rgb=np.ascontiguousarray(rgb), alpha=alpha, bit_depth=32, exif=exif, icc_profile=rgb_profile(icc), xmp=xmp
    )


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


def encode_image(
    rgb: np.ndarray,
    suffix: str,
    alpha: np.ndarray | None = None,
    bit_depth: int = 8,
    exif: bytes | None = None,
    icc_profile: bytes | None = None,
    quality: int = 95,
    xmp: bytes | None = None,
    text: dict[str, str] | None = None,
    gray: bool = False,
) -> bytes:
    """Encode RGB float [0,1] to the format `suffix` names, keeping what that format can hold.

    `bit_depth` 16 gives 16-bit PNG/TIFF, 32 (a floating-point input) a
    float32 TIFF, or 16-bit PNG; other formats are 8-bit. `gray` writes one
    channel (`to_gray`), as a gray photo came in. Non-finite pixels are
    refused: they would be written as black.
    """
    from PIL import Image

    suffix = suffix.lower()
    if suffix not in writable_suffixes():
        raise OutputError(f"cannot write '{suffix}' files (writable: {writable_formats()})")
    if not np.isfinite(rgb).all():
        raise OutputError(
            f"the result holds NaN or infinite values (of {rgb.size}, {np.count_nonzero(~np.isfinite(rgb))}); "
            "nothing was written"
        )
    keep_alpha = alpha is not None and suffix in {".png", ".tif", ".tiff", ".webp", ".avif", ".heic", ".heif", ".hif"}
    if bit_depth == 32 and suffix in FLOAT_SUFFIXES:
        return tiff_with_metadata(_float_tiff_bytes(rgb, alpha if keep_alpha else None), exif, icc_profile, xmp)
    if gray:
        rgb = np.repeat(to_gray(rgb)[:, :, None], 3, axis=2)
    if bit_depth >= 16 and suffix in SIXTEEN_BIT_SUFFIXES:
        data = _sixteen_bit_bytes(rgb, suffix, alpha if keep_alpha else None, gray)
        if suffix == ".png":
            return png_with_metadata(data, exif, icc_profile, text=_text_with_xmp(text, xmp))
        return tiff_with_metadata(data, exif, icc_profile, xmp)
    pixels = quantise(rgb, 8)
    image = Image.fromarray(pixels, "RGB")
    if gray:
        image = Image.fromarray(np.ascontiguousarray(pixels[:, :, 0]), "L")
    if keep_alpha:
        image.putalpha(Image.fromarray(quantise(cast(np.ndarray, alpha), 8), "L"))  # keep_alpha: alpha is set
    options: dict = {}
    if icc_profile:
        options["icc_profile"] = icc_profile
    if exif and suffix != ".bmp":
        options["exif"] = exif
    if xmp and suffix in {".jpg", ".jpeg", ".webp", ".avif", ".heic", ".heif", ".hif"}:
        options["xmp"] = xmp
    if suffix in {".jpg", ".jpeg"}:
        options.update(quality=quality, subsampling=0 if quality >= 90 else 2)
    elif suffix in {".webp", ".avif", ".heic", ".heif", ".hif"}:
        options.update(quality=quality)
    elif suffix == ".png":
        info = _png_info(_text_with_xmp(text, xmp))
        if info is not None:
            options["pnginfo"] = info
    buffer = io.BytesIO()
    image.save(buffer, format=PILLOW_FORMATS[suffix], **options)
    data = buffer.getvalue()
    if suffix in {".tif", ".tiff"} and xmp:
        data = tiff_with_metadata(data, None, None, xmp)
    return data


def _sixteen_bit_bytes(rgb: np.ndarray, suffix: str, alpha: np.ndarray | None, gray: bool) -> bytes:
    """A 16-bit PNG or TIFF (Deflate) from OpenCV, without metadata: one channel for `gray` (without alpha:
    OpenCV has no gray + alpha)."""
    import cv2

    channels = [quantise(rgb[:, :, 2], 16), quantise(rgb[:, :, 1], 16), quantise(rgb[:, :, 0], 16)]
    if gray and alpha is None:
        channels = channels[:1]
    if alpha is not None:
        channels.append(quantise(alpha, 16))
    ok, buffer = cv2.imencode(
        suffix,
        np.dstack(channels) if len(channels) > 1 else channels[0],
        TIFF_DEFLATE if suffix in {".tif", ".tiff"} else [],
    )
    if not ok:
        raise OutputError(f"OpenCV could not encode a 16-bit {suffix} file")
    return buffer.tobytes()


def _float_tiff_bytes(rgb: np.ndarray, alpha: np.ndarray | None) -> bytes:
    """A float32 RGB(A) TIFF, for results of floating-point inputs (no quantisation at all)."""
    import tifffile

    pixels = np.clip(rgb, 0.0, 1.0).astype(np.float32)
    extra: dict[str, Any] = {}
    if alpha is not None:
        pixels = np.dstack([pixels, np.clip(alpha, 0.0, 1.0).astype(np.float32)])
        extra["extrasamples"] = [2]  # unassociated alpha
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, pixels, photometric="rgb", metadata=None, compression="zlib", **extra)
    return buffer.getvalue()


def _text_with_xmp(text: dict[str, str] | None, xmp: bytes | None) -> dict[str, str] | None:
    """PNG text chunks, with the XMP packet added as iTXt when it came from another format."""
    if xmp and XMP_KEY not in (text or {}):
        return {**(text or {}), XMP_KEY: xmp.decode("utf-8", "replace")}
    return text


def _png_info(text: dict[str, str] | None):
    """Pillow `PngInfo` for `text`: iTXt where the value needs it (or was iTXt), zTXt for long values."""
    if not text:
        return None
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value, kind in png_text_chunks(text):
        if kind == "iTXt":
            info.add_itxt(
                key, value, getattr(value, "lang", "") or "", getattr(value, "tkey", "") or "", zip=len(value) > 1024
            )
        else:
            info.add_text(key, value, zip=kind == "zTXt")
    return info


DEFAULT_QUALITY = 95  # JPEG/WebP quality when the input's own cannot be read
# The IJG (libjpeg) luminance table at quality 50: other qualities scale it, which is how a file's quality is read back.
IJG_LUMINANCE = (
    16,
    11,
    10,
    16,
    24,
    40,
    51,
    61,
    12,
    12,
    14,
    19,
    26,
    58,
    60,
    55,
    14,
    13,
    16,
    24,
    40,
    57,
    69,
    56,
    14,
    17,
    22,
    29,
    51,
    87,
    80,
    62,
    18,
    22,
    37,
    56,
    68,
    109,
    103,
    77,
    24,
    35,
    55,
    64,
    81,
    104,
    113,
    92,
    49,
    64,
    78,
    87,
    103,
    121,
    120,
    101,
    72,
    92,
    95,
    98,
    112,
    100,
    103,
    99,
)


def jpeg_quality(file: Path | bytes) -> int | None:
    """The quality a JPEG (a path, or a file's bytes) was saved at, estimated from its luminance table; None
    for other files.

    Re-encoding at the input's own quality keeps the output about as large
    and as faithful as the input, where a fixed 95 would bloat a q75 photo
    and a fixed 75 would degrade a q98 one. Reads the header only.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(file) if isinstance(file, bytes) else file) as image:
            tables = image.quantization if image.format == "JPEG" else None
    except (OSError, UnidentifiedImageError, AttributeError):
        return None
    if not tables or 0 not in tables or len(tables[0]) != 64:
        return None
    scale = 100.0 * sum(tables[0]) / sum(IJG_LUMINANCE)  # libjpeg's percentage scaling of the base table
    quality = (200.0 - scale) / 2.0 if scale <= 100.0 else 5000.0 / scale
    return int(min(100, max(1, round(quality))))


def same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def shown_as(path: Path, within: Path, name: str | None) -> str:
    """How messages name `path`, `within` itself or one of its ancestors, when the user wrote `within` as
    `name`: the same ancestor of `name` (`out` for `/home/u/out` within `out/sub`), else `path` itself."""
    if name is None:
        return str(path)
    shown = Path(name)
    for _ in range(len(within.parts) - len(path.parts)):
        shown = shown.parent
    return str(path) if str(shown) in ("", ".") else str(shown)


def writable_ancestor(folder: Path, name: str | None = None) -> Path:
    """`folder`, or its nearest existing ancestor when it does not exist yet: where a write test can be made
    without creating anything. A one-line `OutputError` when a file stands where a folder should be, or the
    path cannot be looked at; messages name `folder` as `name` if given (`shown_as`)."""
    try:
        existing = next(p for p in (folder, *folder.parents) if p.exists() or p == Path(p.anchor or "."))
        is_folder = existing.is_dir()
    except OSError as exc:
        raise OutputError(f"{name or folder}: cannot look at this output folder ({exc.strerror or exc})") from None
    if not is_folder:
        shown = shown_as(existing, folder, name)
        raise OutputError(f"{shown}: is a file, not a folder (the output was to go inside it)")
    return existing


def check_folder_writable(folder: Path) -> None:
    """Raise a one-line `OutputError` unless a file can be created in `folder` (or where it will be made).

    Tried on `writable_ancestor(folder)` with a temporary file (nothing is
    created): a file in the way, a read-only disk or a folder without
    permission is found before any photo is enhanced, not after each one.
    """
    existing = writable_ancestor(folder)
    try:
        discard(temporary_beside(existing / "probe"))
    except OSError as exc:
        raise OutputError(f"{existing}: cannot write here ({exc.strerror or exc})") from None


def atomic_write(path: Path, data: bytes, protect: list[Path] | None = None, name: str | None = None) -> None:
    """Write `data` to `path` via a temporary file in the same folder and an atomic rename.

    `protect` lists files that must never be replaced (the inputs); a partial
    temporary file is removed on any failure, e.g. a full disk. Messages name
    the file `name` (as the user wrote it, where `path` is absolute), else `path`.
    """
    path = Path(path)
    shown = name or str(path)
    for original in protect or []:
        if path.resolve() == Path(original).resolve() or same_file(path, Path(original)):
            raise OutputError(f"{shown}: refusing to write over the input file")
    folder = path.parent if str(path.parent) else Path(".")
    shown_folder = (os.path.dirname(shown) or str(folder)) if name else str(folder)
    if not folder.is_dir():
        writable_ancestor(folder, shown_folder)  # names a file in the way, which mkdir would only call "File exists"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{shown_folder}: cannot create output folder ({exc.strerror or exc})") from None
    try:
        tmp = temporary_beside(path)
    except OSError as exc:
        raise OutputError(f"{shown_folder}: cannot write here ({exc.strerror or exc})") from None
    try:
        tmp.write_bytes(data)
        commit(tmp, path)
    except OSError as exc:
        discard(tmp)
        raise OutputError(f"{shown}: write failed ({exc.strerror or exc}); no partial file was left") from None


def save_image(
    path: str | Path,
    rgb: np.ndarray,
    like: LoadedImage | None = None,
    protect: list[Path] | None = None,
    quality: int = DEFAULT_QUALITY,
) -> None:
    """Encode by extension and write atomically, keeping alpha/bit depth/EXIF/ICC/XMP/text of `like`."""
    atomic_write(Path(path), encode_like(rgb, path, like, quality), protect)


def encode_like(rgb: np.ndarray, name: str | Path, like: LoadedImage | None, quality: int = DEFAULT_QUALITY) -> bytes:
    """`rgb` encoded for a file called `name` (a path or URL: its extension picks the format), keeping what
    `like` carried (alpha, bit depth, EXIF, ICC, XMP, text); errors name the file."""
    check_writable(name)
    try:
        return encode_image(
            rgb,
            os.path.splitext(str(name))[1],
            alpha=like.alpha if like else None,
            bit_depth=like.bit_depth if like else 8,
            exif=like.exif if like else None,
            icc_profile=like.icc_profile if like else None,
            quality=quality,
            xmp=like.xmp if like else None,
            text=like.text if like else None,
            gray=like.gray if like else False,
        )
    except OutputError as exc:
        raise OutputError(f"{name}: {exc}") from None
