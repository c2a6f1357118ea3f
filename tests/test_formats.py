"""Formats beyond JPEG/PNG and the losses that must never be silent (issue 19).

HEIC/AVIF, camera RAW (a DNG written here), floating-point and multi-page
TIFF, PNG text chunks, unsupported files in `batch`, unwritable `-o`
targets, output == input, and a model whose output is NaN. Each goes
through the CLI with the tiny random model, or through the library.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image, ImageCms, PngImagePlugin
from typer.testing import CliRunner

from lowlight_cli.cli import app
from lowlight_cli.errors import InputError, OutputError
from lowlight_cli.imaging.pixels import quantise
from lowlight_cli.io import images
from lowlight_cli.io.images import encode_image, load_image
from lowlight_cli.models.checkpoint import save_checkpoint
from lowlight_cli.pipeline import build
from tests.conftest import dark_array, tiny_model

runner = CliRunner()
FAST = ["--prior", "fallback", "--steps", "2", "--work-size", "48"]
SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description dc:creator="Ann"/></x:xmpmeta>'


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def library_result(checkpoint: Path, rgb: np.ndarray) -> np.ndarray:
    """What the CLI's options in FAST produce for `rgb`, straight from the pipeline."""
    return build(model=checkpoint, prior="fallback", steps=2, work_size=48, device="cpu").enhance(rgb).rgb


def camera_exif(orientation: int = 1) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    exif[0x0110] = "Phone 15"
    exif[0x0112] = orientation
    exif.get_ifd(0x8769)[0x829A] = 0.25  # ExposureTime
    return exif.tobytes()


def one_line_error(result, code: int = 1) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    return result.output


# --- HEIC / AVIF ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".heic", ".avif"])
def test_heic_and_avif_in_and_out_keep_exif_and_icc(tmp_path, tiny_checkpoint, suffix):
    if suffix not in images.writable_suffixes():
        pytest.skip(f"this Pillow/pillow-heif cannot write {suffix}")
    array = dark_array(40, 56)
    source = tmp_path / f"phone{suffix}"
    source.write_bytes(
        encode_image(array / 255.0, suffix, exif=camera_exif(), icc_profile=SRGB_ICC, quality=95, xmp=XMP)
    )
    loaded = load_image(source)
    assert loaded.rgb.shape == (40, 56, 3)
    assert np.abs(loaded.rgb * 255 - array).mean() < 2.5  # lossy, but the same picture
    assert loaded.icc_profile == SRGB_ICC and XMP in (loaded.xmp or b"")

    result = run("enhance", source, "--model", tiny_checkpoint, *FAST)
    assert result.exit_code == 0, result.output
    out = tmp_path / f"phone_enhanced{suffix}"  # same format by default
    written = Image.open(out)
    assert written.format == {".heic": "HEIF", ".avif": "AVIF"}[suffix] and written.size == (56, 40)
    assert written.getexif().get(0x010F) == "PhoneMaker" and written.getexif().get(0x0110) == "Phone 15"
    assert written.info.get("icc_profile") == SRGB_ICC and XMP in written.info.get("xmp", b"")
    expected = library_result(tiny_checkpoint, loaded.rgb)
    # The same pixels through the same encoder (quality 95: the input's own cannot be read from HEIC/AVIF).
    reference = Image.open(io.BytesIO(encode_image(expected, suffix, quality=95)))
    assert np.abs(np.asarray(written.convert("RGB"), np.int16) - np.asarray(reference.convert("RGB"))).max() <= 1

    # `-o out/photo.heic` is a file in a new folder, not a folder named photo.heic.
    target = tmp_path / "out" / f"photo{suffix}"
    result = run("enhance", source, "-o", target, "--model", tiny_checkpoint, *FAST)
    assert result.exit_code == 0, result.output
    assert target.is_file() and target.read_bytes() == out.read_bytes()

    # Lossless output of the same input: exactly the library's pixels.
    result = run("enhance", source, "-o", tmp_path / "lossless.png", "--model", tiny_checkpoint, *FAST)
    assert result.exit_code == 0, result.output
    png = np.asarray(Image.open(tmp_path / "lossless.png")).astype(np.float32) / 255.0
    assert np.abs(png - expected).max() <= 0.5 / 255 + 1e-6


def test_heic_orientation_is_applied_once(tmp_path):
    if ".heic" not in images.writable_suffixes():
        pytest.skip("no HEIC encoder")
    array = dark_array(20, 30)
    source = tmp_path / "turned.heic"
    source.write_bytes(encode_image(array / 255.0, ".heic", exif=camera_exif(orientation=6), quality=95))
    loaded = load_image(source)
    assert loaded.rgb.shape[:2] == (30, 20)  # upright: 90° clockwise
    upright = np.rot90(array, -1) / 255.0
    assert np.abs(loaded.rgb - upright).mean() < 0.01
    exif = Image.Exif()
    exif.load(loaded.exif)
    assert exif.get(0x0112, 1) == 1


def test_without_a_heic_writer_an_heic_output_is_an_error_not_a_folder(
    tmp_path, dark_jpeg, tiny_checkpoint, monkeypatch
):
    monkeypatch.setattr(images, "_heif_plugin", lambda: None)
    images.writable_suffixes.cache_clear()
    try:
        target = tmp_path / "out" / "photo.heic"
        out = one_line_error(run("enhance", dark_jpeg, "-o", target, "--model", tiny_checkpoint, *FAST))
        assert "cannot write .heic files" in out and "writable: " in out
        assert not target.exists() and not (tmp_path / "out").exists()
    finally:
        images.writable_suffixes.cache_clear()


# --- Camera RAW ---------------------------------------------------------------------------------------------------


def write_dng(path: Path, height: int = 48, width: int = 64) -> np.ndarray:
    """A minimal valid CFA DNG (RGGB, 12-bit) of a neutral left-to-right ramp, shot under a warm light.

    The camera records red at half and blue at a quarter of green's
    level (AsShotNeutral 0.5, 1, 0.25): only the camera's white balance
    makes the ramp neutral again. Returns the scene's linear levels per column.
    """
    ramp = np.linspace(0.05, 0.4, width, dtype=np.float32)
    scene = np.tile(ramp, (height, 1))
    gains = {(0, 0): 0.5, (0, 1): 1.0, (1, 0): 1.0, (1, 1): 0.25}
    cfa = np.zeros((height, width), np.float32)
    for (dy, dx), gain in gains.items():
        cfa[dy::2, dx::2] = scene[dy::2, dx::2] * gain
    tags = [
        (33421, "H", 2, (2, 2), True),  # CFARepeatPatternDim
        (33422, "B", 4, (0, 1, 1, 2), True),  # CFAPattern: RGGB
        (50706, "B", 4, (1, 4, 0, 0), True),  # DNGVersion
        (50708, "s", 0, "Test Cam", True),  # UniqueCameraModel
        (50717, "I", 1, 4095, True),  # WhiteLevel
        (50714, "H", 1, 0, True),  # BlackLevel
        (50721, "2i", 9, (10000, 10000, 0, 1, 0, 1, 0, 1, 10000, 10000, 0, 1, 0, 1, 0, 1, 10000, 10000), True),
        (50778, "H", 1, 21, True),  # CalibrationIlluminant1: D65
        (50728, "2I", 3, (1, 2, 1, 1, 1, 4), True),  # AsShotNeutral
        (271, "s", 0, "RawMaker", True),
        (272, "s", 0, "RawModel", True),
    ]
    tifffile.imwrite(path, (cfa * 4095).astype(np.uint16), photometric=32803, extratags=tags, subfiletype=0)
    return ramp


def srgb(linear: np.ndarray) -> np.ndarray:
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(linear, 1 / 2.4) - 0.055)


def test_dng_is_demosaiced_with_camera_white_balance_to_16_bit(tmp_path):
    ramp = write_dng(tmp_path / "shot.dng")
    loaded = load_image(tmp_path / "shot.dng")
    assert loaded.raw and loaded.bit_depth == 16 and loaded.rgb.shape == (48, 64, 3)
    inner = loaded.rgb[4:-4, 4:-4]  # away from the demosaic border
    assert np.abs(inner[:, :, 0] - inner[:, :, 1]).max() < 0.01  # neutral: the warm cast is white-balanced away
    assert np.abs(inner[:, :, 2] - inner[:, :, 1]).max() < 0.01
    # As exposed (no auto-brightening), sRGB-encoded: the ramp's own levels.
    assert np.allclose(inner[:, :, 1].mean(axis=0), srgb(ramp[4:-4]), atol=0.01)
    # 16-bit precision: many more than 256 distinct levels along a 60-px ramp would not tell; check non-8-bit values.
    assert np.any(np.abs(loaded.rgb * 255 - np.round(loaded.rgb * 255)) > 0.01)
    exif = Image.Exif()
    exif.load(loaded.exif)
    assert exif.get(0x010F) == "RawMaker" and exif.get(0x0110) == "RawModel"


def test_raw_through_the_cli_gives_a_16_bit_tiff_by_default(tmp_path, tiny_checkpoint):
    source = tmp_path / "shot.dng"
    write_dng(source)
    result = run("enhance", source, "--model", tiny_checkpoint, *FAST)
    assert result.exit_code == 0, result.output
    out = tmp_path / "shot_enhanced.tif"
    pixels = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert pixels.dtype == np.uint16 and pixels.shape == (48, 64, 3)
    expected = library_result(tiny_checkpoint, load_image(source).rgb)
    assert np.abs(pixels[:, :, ::-1] / 65535.0 - expected).max() <= 0.5 / 65535 + 1e-6
    assert Image.open(out).getexif().get(0x010F) == "RawMaker"
    # batch names the output .tif too, and a RAW output is refused.
    result = run("batch", tmp_path, "-o", tmp_path / "b", "--glob", "*.dng", "--model", tiny_checkpoint, *FAST)
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["shot.tif"]
    out = one_line_error(run("enhance", source, "-o", tmp_path / "x.dng", "--model", tiny_checkpoint, *FAST))
    assert "camera RAW (.dng) cannot be written" in out


def test_a_corrupt_raw_file_is_a_one_line_error(tmp_path):
    path = tmp_path / "broken.nef"
    path.write_bytes(b"II*\x00" + b"\x00" * 200)
    with pytest.raises(InputError, match="not a camera RAW file LibRaw can read") as info:
        load_image(path)
    assert "\n" not in str(info.value)


# --- TIFF: floating point and multi-page ------------------------------------------------------------------------


def test_float32_rgb_tiff_is_read_as_is_and_written_back_as_float(tmp_path, tiny_checkpoint):
    rng = np.random.default_rng(0)
    values = (dark_array(24, 32) / 255.0 + rng.uniform(0, 1e-3, (24, 32, 3))).astype(np.float32)
    source = tmp_path / "float.tif"
    tifffile.imwrite(source, values, photometric="rgb", extratags=[(34675, "B", len(SRGB_ICC), SRGB_ICC, True)])
    loaded = load_image(source)
    assert loaded.bit_depth == 32 and np.array_equal(loaded.rgb, values) and loaded.icc_profile == SRGB_ICC

    result = run("enhance", source, "--model", tiny_checkpoint, *FAST)
    assert result.exit_code == 0, result.output
    out = tmp_path / "float_enhanced.tif"
    written = tifffile.imread(out)
    assert written.dtype == np.float32 and written.shape == (24, 32, 3)
    assert np.allclose(written, library_result(tiny_checkpoint, loaded.rgb), atol=1e-6)
    with tifffile.TiffFile(out) as tif:
        assert bytes(tif.pages[0].tags[34675].value) == SRGB_ICC


def test_float_tiff_with_values_above_1_names_what_is_unsupported(tmp_path):
    path = tmp_path / "hdr.tif"
    tifffile.imwrite(path, np.full((8, 8, 3), 4.0, np.float32), photometric="rgb")
    with pytest.raises(InputError, match=r"values from 4 to 4; only values in \[0, 1\].*not HDR"):
        load_image(path)


def test_multi_page_tiff_is_refused_not_cut_to_its_first_page(tmp_path, tiny_checkpoint):
    path = tmp_path / "scan.tif"
    with tifffile.TiffWriter(path) as tif:
        for seed in range(3):
            tif.write(dark_array(16, 16, seed=seed), photometric="rgb")
    result = run("enhance", path, "--model", tiny_checkpoint, *FAST)
    assert result.exit_code == 1 and "0 enhanced, 1 failed" in result.output
    assert f"failed {path}: multi-page TIFF (3 pages); only single-page TIFFs are enhanced" in result.output
    assert not (tmp_path / "scan_enhanced.tif").exists()


def test_a_tiff_with_a_preview_page_is_one_picture(tmp_path):
    path = tmp_path / "with_preview.tif"
    photo = dark_array(32, 32)
    with tifffile.TiffWriter(path) as tif:
        tif.write(photo, photometric="rgb")
        tif.write(photo[::4, ::4], photometric="rgb", subfiletype=1)  # reduced-resolution preview
    assert np.array_equal(np.round(load_image(path).rgb * 255), photo)


def test_animated_webp_is_refused(tmp_path):
    path = tmp_path / "anim.webp"
    frames = [Image.fromarray(dark_array(16, 16, seed=s)) for s in range(2)]
    frames[0].save(path, save_all=True, append_images=frames[1:], lossless=True)
    with pytest.raises(InputError, match="holds 2 images"):
        load_image(path)


# --- PNG text chunks ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sixteen", [False, True])
def test_png_text_chunks_are_kept(tmp_path, tiny_checkpoint, sixteen):
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Ann Example")
    info.add_text("Comment", "night walk " * 200, zip=True)  # zTXt
    info.add_itxt("Title", "Nachtspaziergang über die Brücke", lang="de", tkey="Titel")
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    source = tmp_path / "tagged.png"
    if sixteen:
        pixels = Image.fromarray(dark_array(20, 30)[:, :, 0].astype(np.uint16) * 257)  # 16-bit gray
    else:
        pixels = Image.fromarray(dark_array(20, 30))
    pixels.save(source, pnginfo=info)
    result = run("enhance", source, "--model", tiny_checkpoint, *FAST)
    assert result.exit_code == 0, result.output
    written = Image.open(tmp_path / "tagged_enhanced.png")
    written.load()
    assert written.text["Author"] == "Ann Example"
    assert written.text["Comment"] == "night walk " * 200
    assert written.text["Title"] == "Nachtspaziergang über die Brücke"
    assert written.text["Title"].lang == "de" and written.text["Title"].tkey == "Titel"
    assert written.text["XML:com.adobe.xmp"] == XMP.decode()
    if sixteen:
        assert cv2.imread(str(tmp_path / "tagged_enhanced.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16


@pytest.mark.parametrize("suffix, bit_depth", [(".jpg", 8), (".webp", 8), (".tif", 8), (".tif", 16), (".tif", 32)])
def test_png_xmp_reaches_other_outputs(tmp_path, suffix, bit_depth):
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    source = tmp_path / "x.png"
    Image.fromarray(dark_array(8, 8)).save(source, pnginfo=info)
    loaded = load_image(source)
    loaded.bit_depth = bit_depth
    out = tmp_path / f"x{suffix}"
    images.save_image(out, loaded.rgb, like=loaded)
    if bit_depth != 32:  # Pillow cannot open a float RGB TIFF; load_image reads it with tifffile
        assert Image.open(out).info["xmp"] == XMP
    assert load_image(out).xmp == XMP


def test_a_float_tiff_whose_codec_is_missing_names_it(tmp_path, monkeypatch):
    path = tmp_path / "lzw.tif"
    tifffile.imwrite(path, np.full((4, 4, 3), 0.5, np.float32), photometric="rgb", compression="zlib")

    def no_codec(self, *args, **kwargs):
        raise ValueError("<COMPRESSION.LZW: 5> requires the 'imagecodecs' package")

    monkeypatch.setattr(tifffile.TiffPage, "asarray", no_codec)
    with pytest.raises(
        InputError,
        match=r"floating-point TIFF with ADOBE_DEFLATE compression cannot be decoded "
        r"here \(requires the 'imagecodecs' package; pip install imagecodecs\)",
    ):
        load_image(path)


# --- batch, -o and the input --------------------------------------------------------------------------------------


def test_batch_lists_unsupported_files(tmp_path, tiny_checkpoint):
    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.fromarray(dark_array()).save(folder / "a.jpg")
    Image.fromarray(dark_array(seed=1)).save(folder / "anim.gif")
    (folder / "notes.txt").write_text("not a picture, not listed")
    result = run("batch", folder, "-o", tmp_path / "out", "--model", tiny_checkpoint, *FAST)
    assert result.exit_code == 0, result.output
    assert "1 enhanced, 1 unsupported file skipped: anim.gif" in result.output
    assert "notes.txt" not in result.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.jpg"]


def test_batch_of_only_gifs_says_so(tmp_path, tiny_checkpoint):
    folder = tmp_path / "gifs"
    folder.mkdir()
    for name in ("one.gif", "two.gif"):
        Image.fromarray(dark_array()).save(folder / name)
    out = one_line_error(run("batch", folder, "--model", tiny_checkpoint, *FAST))
    assert "no supported images; 2 unsupported files skipped: one.gif, two.gif" in out
    assert "--recursive" not in out


def test_an_empty_batch_folder_is_an_error_like_one_of_only_gifs(tmp_path, tiny_checkpoint):
    (tmp_path / "empty").mkdir()
    assert "no images found in" in one_line_error(run("batch", tmp_path / "empty", "--model", tiny_checkpoint, *FAST))


@pytest.mark.parametrize("name", ["photo.gif", "photo.jxl", "photo.dng"])
def test_an_unwritable_image_extension_is_an_error_not_a_folder(tmp_path, dark_jpeg, tiny_checkpoint, name):
    target = tmp_path / "out" / name
    out = one_line_error(run("enhance", dark_jpeg, "-o", target, "--model", tiny_checkpoint, *FAST))
    assert "cannot" in out and "be written" in out or "cannot write" in out
    assert not target.exists() and not (tmp_path / "out").exists()


def test_format_option_lists_only_writable_formats(dark_jpeg, tiny_checkpoint):
    out = one_line_error(run("enhance", dark_jpeg, "--format", "dng", "--model", tiny_checkpoint, *FAST), code=2)
    assert "--format dng: cannot be written" in out and "dng" not in out.split("choose from")[1]


def test_output_equal_to_input_says_it_refuses_to_write_over_it(dark_jpeg, tiny_checkpoint):
    before = dark_jpeg.read_bytes()
    result = run("enhance", dark_jpeg, "-o", dark_jpeg, "--model", tiny_checkpoint, *FAST)
    assert result.exit_code == 1
    assert "refusing to write over the input" in result.output and "output exists" not in result.output
    assert dark_jpeg.read_bytes() == before


# --- a model whose output is not finite ---------------------------------------------------------------------------


def test_a_model_with_nan_output_fails_naming_the_model(tmp_path, dark_jpeg):
    model = tiny_model()
    with torch.no_grad():
        model.out_conv.weight.fill_(float("nan"))
    checkpoint = tmp_path / "broken model.safetensors"
    save_checkpoint(model, checkpoint)
    result = run("enhance", dark_jpeg, "--model", checkpoint, *FAST)
    assert result.exit_code == 1, result.output
    assert f"model {checkpoint} produced NaN or infinite values" in result.output
    assert "RuntimeWarning" not in result.output
    assert not dark_jpeg.with_name("dark photo_enhanced.jpg").exists()


def test_the_encoder_never_writes_non_finite_pixels_as_black(tmp_path):
    rgb = np.full((4, 4, 3), 0.5, np.float32)
    rgb[1, 1, 1] = np.inf
    with pytest.raises(OutputError, match="NaN or infinite"):
        images.save_image(tmp_path / "x.png", rgb)
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(("mode", "suffix"), [("L", ".png"), ("L", ".jpg"), ("I;16", ".png"), ("I;16", ".tif")])
def test_a_gray_photo_comes_back_gray_in_one_channel(tmp_path, tiny_checkpoint, mode, suffix):
    """Gray in, gray out: one channel, no tint (a colour result's channels would differ by the model's cast)."""
    pixels = dark_array(48, 64)[:, :, 1]
    source = tmp_path / f"gray{suffix}"
    if mode == "I;16":
        cv2.imwrite(str(source), pixels.astype(np.uint16) * 257)
    else:
        Image.fromarray(pixels, mode).save(source)
    result = CliRunner().invoke(
        app, ["enhance", str(source), "--model", str(tiny_checkpoint), "--device", "cpu", "--prior", "none"]
    )
    assert result.exit_code == 0, result.output
    written = cv2.imread(str(tmp_path / f"gray_enhanced{suffix}"), cv2.IMREAD_UNCHANGED)
    assert written.ndim == 2
    assert written.dtype == (np.uint16 if mode == "I;16" else np.uint8)
    assert load_image(tmp_path / f"gray_enhanced{suffix}").gray


def test_16_bit_tiff_outputs_open_with_tifffile_alone():
    """Deflate, not OpenCV's default LZW, which tifffile reads only with imagecodecs (not our dependency)."""
    rgb = np.random.default_rng(0).random((20, 30, 3)).astype(np.float32)
    data = encode_image(rgb, ".tif", bit_depth=16)
    assert tifffile.TiffFile(io.BytesIO(data)).pages[0].compression == tifffile.COMPRESSION.ADOBE_DEFLATE
    assert np.array_equal(tifffile.imread(io.BytesIO(data)), quantise(rgb, 16))
