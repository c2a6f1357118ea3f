"""`io.metadata` on its own: ICC, EXIF, XMP and text spliced into 16-bit PNG/TIFF bytes, read back by Pillow."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from lowlight_cli.io.metadata import exif_of_tiff_bytes, png_text_chunks, png_with_metadata, tiff_with_metadata

ICC = b"fake icc profile " * 20


def sixteen_bit(suffix: str) -> tuple[bytes, np.ndarray]:
    pixels = (np.arange(4 * 6 * 3, dtype=np.uint16).reshape(4, 6, 3) * 900).astype(np.uint16)
    ok, buffer = cv2.imencode(suffix, pixels)
    assert ok
    return buffer.tobytes(), pixels


def camera_exif() -> bytes:
    exif = Image.Exif()
    exif[271], exif[272], exif[274] = "Cam", "Model 1", 6  # Make, Model, Orientation
    exif.get_ifd(34665)[33434] = 0.5  # ExposureTime in the Exif sub-IFD
    return exif.tobytes()


def test_png_gets_icc_exif_and_text_and_keeps_its_pixels():
    png, pixels = sixteen_bit(".png")
    assert png_with_metadata(png, None, None) == png  # nothing to add: the very bytes
    out = png_with_metadata(png, camera_exif(), ICC, text={"Author": "Ann", "Comment": "long " * 300})
    image = Image.open(io.BytesIO(out))
    assert image.info["icc_profile"] == ICC
    assert image.getexif()[271] == "Cam" and image.getexif().get_ifd(34665)[33434] == 0.5
    assert image.text == {"Author": "Ann", "Comment": "long " * 300}
    assert np.array_equal(cv2.imdecode(np.frombuffer(out, np.uint8), cv2.IMREAD_UNCHANGED), pixels)
    with pytest.raises(ValueError, match="not a PNG stream"):
        png_with_metadata(b"GIF89a....", None, ICC)


def test_text_chunks_are_latin1_text_compressed_when_long_and_international_when_needed():
    kinds = {key: kind for key, _, kind in png_text_chunks({"Author": "Ann", "Comment": "x" * 2000, "Title": "Łódź"})}
    assert kinds == {"Author": "tEXt", "Comment": "zTXt", "Title": "iTXt"}


def test_tiff_gets_icc_xmp_and_the_cameras_tags_but_not_a_second_orientation():
    tiff, pixels = sixteen_bit(".tif")
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"></x:xmpmeta>'
    out = tiff_with_metadata(tiff, camera_exif(), ICC, xmp)
    image = Image.open(io.BytesIO(out))
    tags = image.tag_v2
    assert tags[34675] == ICC and tags[700] == xmp
    assert (tags[271], tags[272]) == ("Cam", "Model 1") and 274 not in tags  # pixel layout stays OpenCV's
    assert np.array_equal(cv2.imdecode(np.frombuffer(out, np.uint8), cv2.IMREAD_UNCHANGED), pixels)
    exif = Image.Exif()
    exif.load(exif_of_tiff_bytes(out))
    assert (exif[271], exif[272]) == ("Cam", "Model 1") and exif.get_ifd(34665)[33434] == 0.5
    assert exif_of_tiff_bytes(b"\x89PNG....") is None
