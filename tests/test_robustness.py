"""Nothing lost, nobody surprised: hostile inputs never escape as unhandled exceptions.

Hypothesis feeds random bytes and random small images of random modes and
sizes through the same load → enhance → save path the CLI uses.
"""

import io
import threading

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from lowlight_cli.errors import LowlightError
from lowlight_cli.io.images import atomic_write, load_image, save_image
from lowlight_cli.pipeline import Pipeline, build
from tests.conftest import tiny_model

ENHANCER = None


def enhancer() -> Pipeline:
    global ENHANCER
    if ENHANCER is None:
        ENHANCER = build(denoiser=tiny_model(), device="cpu", prior="fallback", steps=1, work_size=32)
    return ENHANCER


def enhance_file(tmp_path, data: bytes, suffix: str) -> None:
    source = tmp_path / f"in{suffix}"
    source.write_bytes(data)
    try:
        image = load_image(source)
        result = enhancer().enhance(image.rgb)
        assert result.rgb.shape == image.rgb.shape
        assert np.isfinite(result.rgb).all()
        save_image(tmp_path / f"out{suffix}", result.rgb, like=image, protect=[source])
    except LowlightError as exc:
        assert "\n" not in str(exc)
    assert source.read_bytes() == data


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2048), suffix=st.sampled_from([".jpg", ".png", ".tif", ".webp", ".bmp"]))
def test_random_bytes_never_crash(tmp_path, data, suffix):
    enhance_file(tmp_path, data, suffix)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    mode=st.sampled_from(["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16"]),
    width=st.integers(1, 40),
    height=st.integers(1, 40),
    fmt=st.sampled_from(["PNG", "TIFF", "JPEG", "WEBP", "BMP"]),
    seed=st.integers(0, 1000),
)
def test_random_small_images_of_any_mode_enhance(tmp_path, mode, width, height, fmt, seed):
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 60, (height, width, 3), dtype=np.uint8)).convert(
        "L" if mode == "I;16" else mode
    )
    if mode == "I;16":
        image = Image.fromarray(np.asarray(image).astype(np.uint16) * 257)
    buffer = io.BytesIO()
    try:
        image.save(buffer, format=fmt)
    except (OSError, ValueError, KeyError):
        return  # Pillow cannot write this mode in this format; nothing to test
    enhance_file(tmp_path, buffer.getvalue(), "." + fmt.lower().replace("jpeg", "jpg"))


def test_one_pixel_image_is_enhanced(tmp_path):
    Image.new("RGB", (1, 1), (10, 5, 3)).save(tmp_path / "p.png")
    rgb = load_image(tmp_path / "p.png").rgb
    result = enhancer().enhance(rgb)
    assert result.rgb.shape == (1, 1, 3)
    assert np.isfinite(result.rgb).all() and 0.0 <= result.rgb.min() and result.rgb.max() <= 1.0
    assert float(result.rgb.mean()) > 2 * float(rgb.mean())  # the one dark pixel is brightened, not passed through
    assert np.array_equal(result.rgb, enhancer().enhance(rgb).rgb)  # and the same way every time


def test_concurrent_writers_never_corrupt_the_target(tmp_path):
    target = tmp_path / "out.png"
    payloads = []
    for value in range(6):
        buffer = io.BytesIO()
        Image.new("RGB", (64, 64), (value * 40, 0, 0)).save(buffer, format="PNG")
        payloads.append(buffer.getvalue())
    threads = [threading.Thread(target=atomic_write, args=(target, data)) for data in payloads for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert target.read_bytes() in payloads
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_non_ascii_names(tmp_path):
    from typer.testing import CliRunner

    from lowlight_cli.cli import app
    from lowlight_cli.models.checkpoint import save_checkpoint

    ckpt = tmp_path / "m.safetensors"
    save_checkpoint(tiny_model(), ckpt)
    source = tmp_path / "nuit à Zürich 夜.png"
    Image.new("RGB", (20, 12), (8, 6, 4)).save(source)
    result = CliRunner().invoke(
        app, ["enhance", str(source), "--model", str(ckpt), "--prior", "fallback", "--steps", "1"]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "nuit à Zürich 夜_enhanced.png").exists()
