"""Image I/O edge cases: modes, bit depths, orientation, metadata, atomic writes."""

import io
import os
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from lowlight_cli.errors import InputError, OutputError
from lowlight_cli.imaging.pixels import quantise
from lowlight_cli.io.images import atomic_write, encode_image, load_image, save_image
from tests.conftest import dark_array


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares width×height but carries almost no data (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "CMYK", "LA", "1", "I;16"])
def test_every_mode_loads_as_rgb_float(tmp_path, mode):
    base = Image.fromarray(dark_array(20, 30))
    image = (
        base.convert(mode) if mode != "I;16" else Image.fromarray(np.asarray(base.convert("L")).astype(np.uint16) * 257)
    )
    suffix = ".tiff" if mode == "CMYK" else ".png"
    path = tmp_path / f"x{suffix}"
    image.save(path)
    loaded = load_image(path)
    assert loaded.rgb.shape == (20, 30, 3) and loaded.rgb.dtype == np.float32
    assert 0.0 <= loaded.rgb.min() and loaded.rgb.max() <= 1.0
    assert (loaded.alpha is not None) == (mode in {"RGBA", "LA"})


def test_16bit_rgb_png_keeps_precision_and_depth(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.integers(0, 4000, size=(16, 24, 3), dtype=np.uint16)
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), values[:, :, ::-1])
    loaded = load_image(path)
    assert loaded.bit_depth == 16
    assert np.allclose(loaded.rgb * 65535, values, atol=0.5)
    out = tmp_path / "deep_out.png"
    save_image(out, loaded.rgb, like=loaded)
    again = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert again.dtype == np.uint16 and np.array_equal(again[:, :, ::-1], values)


def test_16bit_tiff_round_trip(tmp_path):
    values = np.arange(8 * 8 * 3, dtype=np.uint16).reshape(8, 8, 3) * 300
    path = tmp_path / "deep.tif"
    cv2.imwrite(str(path), values[:, :, ::-1])
    loaded = load_image(path)
    assert loaded.bit_depth == 16
    save_image(tmp_path / "o.tif", loaded.rgb, like=loaded)
    assert cv2.imread(str(tmp_path / "o.tif"), cv2.IMREAD_UNCHANGED).dtype == np.uint16


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_output_keeps_icc_profile_and_exif(tmp_path, suffix):
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    exif.get_ifd(0x8769)[0x9003] = "2026:11:22 20:15:00"  # DateTimeOriginal, in the Exif sub-IFD
    exif.get_ifd(0x8825)[2] = (52.0, 31.0, 12.5)  # GPSLatitude, in the GPS sub-IFD
    values = np.random.default_rng(1).integers(0, 65535, size=(12, 10, 3), dtype=np.uint16)
    source = tmp_path / f"deep{suffix}"
    source.write_bytes(encode_image(values / 65535.0, suffix, bit_depth=16, exif=exif.tobytes(), icc_profile=icc))
    loaded = load_image(source)
    assert loaded.bit_depth == 16 and np.array_equal(np.round(loaded.rgb * 65535), values)
    assert loaded.icc_profile == icc
    out = tmp_path / f"deep_out{suffix}"
    save_image(out, loaded.rgb, like=loaded)
    assert np.array_equal(cv2.imread(str(out), cv2.IMREAD_UNCHANGED)[:, :, ::-1], values)
    written = Image.open(out)
    assert written.info.get("icc_profile") == icc
    kept = written.getexif()
    assert kept.get(0x010F) == "TestCam"
    assert kept.get_ifd(0x8769).get(0x9003) == "2026:11:22 20:15:00"
    assert tuple(float(v) for v in kept.get_ifd(0x8825).get(2)) == (52.0, 31.0, 12.5)


def test_tiff_exif_reaches_other_formats(tmp_path):
    """Pillow files a TIFF's EXIF among its pixel tags; only the photo's own tags may travel on."""
    exif = Image.Exif()
    exif[0x010F] = "TiffCam"
    exif.get_ifd(0x8769)[0x829A] = 0.25  # ExposureTime
    source = tmp_path / "eight.tif"
    Image.new("RGB", (8, 6), (40, 20, 10)).save(source, exif=exif.tobytes())
    loaded = load_image(source)
    out = tmp_path / "eight.jpg"
    save_image(out, loaded.rgb, like=loaded)
    kept = Image.open(out).getexif()
    assert kept.get(0x010F) == "TiffCam" and float(kept.get_ifd(0x8769)[0x829A]) == 0.25
    assert 256 not in kept and 273 not in kept  # no ImageWidth / StripOffsets of the TIFF


def test_exif_orientation_is_applied_and_reset_and_icc_kept(tmp_path):
    array = dark_array(20, 40)
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    icc = b"fake-icc-profile-bytes"
    path = tmp_path / "rot.jpg"
    image.save(path, exif=exif.tobytes(), icc_profile=icc)
    loaded = load_image(path)
    assert loaded.rgb.shape[:2] == (40, 20)
    out = tmp_path / "rot_out.jpg"
    save_image(out, loaded.rgb, like=loaded)
    written = Image.open(out)
    assert written.size == (20, 40)
    assert written.getexif().get(0x0112) == 1
    assert written.info.get("icc_profile") == icc


@pytest.mark.parametrize("mode, space", [("CMYK", b"CMYK"), ("L", b"GRAY")])
def test_a_cmyk_or_gray_profile_is_not_put_on_rgb_pixels(tmp_path, mode, space):
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    foreign = srgb[:16] + space + srgb[20:]  # the header's data colour space field
    path = tmp_path / "foreign.jpg"
    Image.new(mode, (8, 6)).save(path, icc_profile=foreign)
    assert load_image(path).icc_profile is None
    Image.new("RGB", (8, 6)).save(path, icc_profile=srgb)
    assert load_image(path).icc_profile == srgb


def test_floating_point_tiff_in_0_1_keeps_its_levels(tmp_path):
    values = np.linspace(0.0, 1.0, 48, dtype=np.float32).reshape(6, 8)
    path = tmp_path / "float.tif"
    Image.fromarray(values, "F").save(path)
    loaded = load_image(path)
    assert np.allclose(loaded.rgb[:, :, 1], values, atol=1e-6)


def test_alpha_is_kept_on_png(tmp_path):
    rgba = np.dstack([dark_array(10, 10), np.linspace(0, 255, 100).reshape(10, 10).astype(np.uint8)])
    path = tmp_path / "a.png"
    Image.fromarray(rgba, "RGBA").save(path)
    loaded = load_image(path)
    save_image(tmp_path / "b.png", loaded.rgb, like=loaded)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "b.png"))[:, :, 3], rgba[:, :, 3])


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"", "empty"),
        (b"hello, I am text", "not a supported image: its contents match none"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01", "corrupt or truncated"),  # a JPEG cut after its first bytes
        (b"\x89PNG\r\n\x1a\n", "corrupt or truncated"),  # a PNG's signature and nothing more
        (png_header_only(70000, 70000), "refusing to decode"),
    ],
)
def test_bad_files_give_one_line_errors(tmp_path, payload, message):
    path = tmp_path / "bad.png"
    path.write_bytes(payload)
    with pytest.raises(InputError, match=message) as info:
        load_image(path)
    assert "\n" not in str(info.value)


def test_truncated_jpeg_and_png(tmp_path):
    for suffix in (".jpg", ".png"):
        buffer = io.BytesIO()
        Image.fromarray(dark_array(64, 64)).save(buffer, format="JPEG" if suffix == ".jpg" else "PNG")
        path = tmp_path / f"cut{suffix}"
        path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        with pytest.raises(InputError, match="corrupt or truncated"):
            load_image(path)


def test_unsupported_format_names_supported_ones(tmp_path):
    path = tmp_path / "x.gif"
    Image.fromarray(dark_array(8, 8)).save(path)
    with pytest.raises(InputError, match=r"GIF images are not supported \(supported: .*bmp.*heic.*camera RAW \(.*dng"):
        load_image(path)


def test_atomic_write_refuses_input_and_leaves_no_partial_file(tmp_path, monkeypatch):
    source = tmp_path / "in.png"
    source.write_bytes(b"original")
    with pytest.raises(OutputError, match="over the input"):
        atomic_write(source, b"new", protect=[source])
    assert source.read_bytes() == b"original"

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OutputError, match="No space left"):
        atomic_write(tmp_path / "out.png", b"x" * 1000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


def test_read_only_folder(tmp_path, monkeypatch):
    import tempfile

    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    if os.geteuid() == 0:  # root ignores folder permissions: make the OS answer as it would for a user

        def denied(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(OutputError, match="cannot write here"):
        atomic_write(folder / "x.png", b"x")
    assert list(folder.iterdir()) == []


def test_quantise_gives_each_level_back_clips_and_leaves_its_input_alone():
    levels = np.arange(256, dtype=np.float32) / 255.0
    values = np.concatenate([levels, np.float32([-0.2, 1.3])])
    before = values.copy()
    assert quantise(values).tolist() == list(range(256)) + [0, 255]
    assert quantise(np.arange(65536, dtype=np.float64) / 65535.0, 16).tolist() == list(range(65536))
    assert np.array_equal(values, before)
