"""The shadow-noise filter smooths where the gain amplified noise, and nowhere else."""

import numpy as np

from lowlight_cli.imaging.colour import REC601, luma
from lowlight_cli.imaging.shadow_noise import expected_noise, input_noise_sigma, local_gain, suppress_shadow_noise


def dark_scene(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A near-black, noisy left half (gain ~20) and a well-exposed, textured right half (gain ~1)."""
    height, width = 96, 192
    low = np.empty((height, width, 3), np.float32)
    low[:, : width // 2] = 0.01 + rng.normal(0, 0.003, (height, width // 2, 3))
    stripes = 0.5 + 0.15 * np.sign(np.sin(np.arange(width // 2) / 2.0))
    low[:, width // 2 :] = stripes[None, :, None]
    low = np.clip(low, 0, 1)
    out = low.copy()
    out[:, : width // 2] = np.clip(low[:, : width // 2] * 20, 0, 1)  # what brightening does to the dark half
    return low, out


def test_smooths_amplified_noise_and_keeps_well_exposed_texture():
    low, out = dark_scene(np.random.default_rng(0))
    result = suppress_shadow_noise(low, out, strength=0.5)
    dark, bright = slice(8, 88), slice(104, 184)
    assert result[:, dark].std() < 0.6 * out[:, dark].std()
    assert suppress_shadow_noise(low, out, strength=1.0)[:, dark].std() < 0.7 * result[:, dark].std()
    assert abs(result[:, dark].mean() - out[:, dark].mean()) < 0.01  # brightness kept, only noise removed
    assert np.abs(result[:, bright] - out[:, bright]).max() < 0.02  # stripes (gain 1) untouched


def test_expected_noise_follows_the_gain():
    low, out = dark_scene(np.random.default_rng(1))
    sigma = expected_noise(luma(low, REC601), local_gain(luma(low, REC601), luma(out, REC601), radius=5))
    assert sigma[:, 10:80].mean() > 10 * sigma[:, 110:180].mean()
    assert input_noise_sigma(np.zeros((32, 32), np.float32)) > 0  # quantisation floor on a black frame


def test_strength_zero_is_the_identity():
    low, out = dark_scene(np.random.default_rng(2))
    assert suppress_shadow_noise(low, out, strength=0.0) is out


def test_colour_patches_at_one_luminance_keep_their_colour():
    """Side-by-side patches of one luma and different colours (a colour checker in a dark corner) keep their
    colour through the filter, where noise of the same gain is smoothed."""
    rng = np.random.default_rng(3)
    red, blue = np.array([0.5, 0.1, 0.2]), np.array([0.1, 0.2, 0.5])
    blue = blue * luma(red[None, None], REC601)[0, 0] / luma(blue[None, None], REC601)[0, 0]  # red's luma
    out = np.empty((96, 384, 3), np.float32)  # the filter's radius is 5 px at a long side of 384
    out[:] = np.where(np.arange(384)[None, :, None] // 12 % 2 == 0, red, blue)  # 12-px patches
    low = np.clip(out / 20 + rng.normal(0, 0.002, out.shape), 0, 1).astype(np.float32)  # a gain of 20
    out = np.clip(out + rng.normal(0, 0.04, out.shape), 0, 1).astype(np.float32)  # the lifted noise
    result = suppress_shadow_noise(low, out, strength=0.5)
    patches = result.reshape(96, 32, 12, 3)[:, :, 4:8].mean(axis=(0, 2))  # each patch's middle, (32, 3)
    # 0.047 here; 0.084 when colour followed the luma guide, the patches half merged
    assert np.abs(patches[0::2] - red).max() < 0.065 and np.abs(patches[1::2] - blue).max() < 0.065
    middles = lambda x: x.reshape(96, 32, 12, 3)[:, :, 4:8].std(axis=(0, 2)).mean()  # noqa: E731
    assert middles(result) < 0.7 * middles(out)  # 0.59: the noise within each patch is smoothed
