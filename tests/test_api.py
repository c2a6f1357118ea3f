"""The public Python API (`from lowlight_cli import enhance, Enhancer`): each input kind in, the same kind out.

The model is the tiny random one from conftest, so these tests check the
conversions (dtype, range, shape, mode, alpha), not the quality of the result.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import dark_array

OPTIONS = dict(device="cpu", prior="fallback", steps=2, work_size=48)


@pytest.fixture(scope="module")
def enhancer(tiny_checkpoint):
    from lowlight_cli import Enhancer

    return Enhancer(tiny_checkpoint, **OPTIONS)


@pytest.fixture(scope="module")
def reference(enhancer) -> np.ndarray:
    """The pipeline's own float result for `dark_array()`: what every input kind must reproduce."""
    return enhancer.pipeline.enhance(dark_array().astype(np.float32) / 255.0).rgb


def test_package_exports_the_api_lazily():
    code = (
        "import sys, lowlight_cli; assert 'torch' not in sys.modules, 'torch imported'; "
        "from lowlight_cli import enhance, Enhancer; assert 'torch' in sys.modules; "
        "assert {'enhance', 'Enhancer'} <= set(dir(lowlight_cli))"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    import lowlight_cli

    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        lowlight_cli.nothing  # noqa: B018


def test_enhancing_does_not_import_torch_s_symbolic_shapes(tiny_checkpoint):
    """The denoiser's attention masks keep torch's shape checks (and sympy, 0.4 s per run) out of a run."""
    code = (
        "import sys, numpy as np; from lowlight_cli import enhance; "
        f"enhance(np.full((48, 64, 3), 20, np.uint8), model={str(tiny_checkpoint)!r}, device='cpu'); "
        "assert 'torch' in sys.modules and 'sympy' not in sys.modules, 'sympy imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_uint8_array_in_uint8_array_out(enhancer, reference):
    source = dark_array()
    out = enhancer.enhance(source)
    assert out.dtype == np.uint8 and out.shape == source.shape
    assert np.abs(out.astype(int) - np.round(reference * 255).astype(int)).max() <= 1
    assert out.mean() > 2 * source.mean()


def test_uint16_and_float_arrays_keep_their_dtype(enhancer, reference):
    sixteen = dark_array().astype(np.uint16) * 257  # the same picture at 16 bits
    out = enhancer.enhance(sixteen)
    assert out.dtype == np.uint16 and out.shape == sixteen.shape
    assert np.abs(out / 65535.0 - reference).max() < 1e-4
    for dtype in (np.float32, np.float64):
        out = enhancer.enhance(dark_array().astype(dtype) / 255.0)
        assert out.dtype == dtype and out.shape == (48, 64, 3)
        assert np.abs(out - reference).max() < 1e-5


def test_gray_array_stays_gray(enhancer):
    gray = dark_array()[:, :, 1]
    out = enhancer.enhance(gray)
    assert out.dtype == np.uint8 and out.shape == gray.shape
    assert out.mean() > 2 * gray.mean()


def test_pil_images_keep_their_mode_and_alpha(enhancer, reference):
    rgb = Image.fromarray(dark_array())
    out = enhancer.enhance(rgb)
    assert isinstance(out, Image.Image) and out.mode == "RGB" and out.size == rgb.size
    assert np.abs(np.asarray(out, int) - np.round(reference * 255).astype(int)).max() <= 1
    rgba = rgb.copy()
    alpha = Image.fromarray(np.tile(np.arange(64, dtype=np.uint8) * 4, (48, 1)))
    rgba.putalpha(alpha)
    out = enhancer.enhance(rgba)
    assert out.mode == "RGBA" and np.array_equal(np.asarray(out)[:, :, 3], np.asarray(alpha))
    assert np.abs(np.asarray(out, int)[:, :, :3] - np.round(reference * 255).astype(int)).max() <= 1
    out = enhancer.enhance(rgb.convert("L"))
    assert out.mode == "L" and out.size == rgb.size
    sixteen = Image.fromarray(dark_array()[:, :, 0].astype(np.uint16) * 257)
    out = enhancer.enhance(sixteen)
    assert out.mode.startswith("I") and np.asarray(out).max() > 255  # 16-bit values, not clipped to 8 bits


def test_path_in_pil_image_out_and_nothing_written(enhancer, reference, tmp_path):
    path = tmp_path / "dark.png"
    Image.fromarray(dark_array()).save(path)
    for source in (path, str(path)):
        out = enhancer.enhance(source)
        assert isinstance(out, Image.Image) and out.mode == "RGB" and out.size == (64, 48)
        assert np.abs(np.asarray(out, int) - np.round(reference * 255).astype(int)).max() <= 1
    assert [p.name for p in tmp_path.iterdir()] == ["dark.png"]


def test_one_call_enhance_takes_the_cli_options(tiny_checkpoint, enhancer):
    from lowlight_cli import enhance

    source = dark_array()
    assert np.array_equal(enhance(source, model=tiny_checkpoint, **OPTIONS), enhancer.enhance(source))


@pytest.mark.parametrize(
    "image, error, message",
    [
        ([[0, 1], [2, 3]], TypeError, "cannot enhance a builtins.list"),
        (b"\xff\xd8 jpeg bytes", TypeError, "pass a file path"),
        (np.zeros((8, 8, 3), np.int32), TypeError, "dtype int32 are not supported"),
        (np.full((8, 8, 3), 2.0), ValueError, "values in [0, 1], got 2..2"),
        (np.full((8, 8, 3), np.nan, np.float32), ValueError, "NaN or infinity"),
        (np.zeros((8, 8, 4), np.uint8), ValueError, "got shape (8, 8, 4)"),
        (np.zeros((0, 8, 3), np.uint8), ValueError, "got shape (0, 8, 3)"),
    ],
)
def test_unusable_inputs_are_clear_errors(enhancer, image, error, message):
    with pytest.raises(error) as info:
        enhancer.enhance(image)
    assert message in str(info.value)


def test_bad_options_are_value_errors(tiny_checkpoint):
    from lowlight_cli import Enhancer, enhance

    with pytest.raises(ValueError, match="^steps must be at least 1"):
        Enhancer(tiny_checkpoint, **{**OPTIONS, "steps": 0})
    with pytest.raises(TypeError, match="unexpected keyword argument 'stpes'"):
        enhance(dark_array(), model=tiny_checkpoint, stpes=2)
