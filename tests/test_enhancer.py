"""`Enhancer` on its own: which resolution it samples at."""

from __future__ import annotations

import numpy as np

from lowlight_cli.pipeline import DIRECT_MAX_NOISE, Enhancer, lifted_noise
from tests.conftest import tiny_model


def scene(height: int, width: int, noise: float, seed: int = 0) -> np.ndarray:
    """A dim, smooth gradient (mean ≈ 0.1) with Gaussian noise of std `noise`."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = 0.05 + 0.1 * (x / width)[..., None] * np.array([1.0, 0.8, 0.6]) + 0.02 * np.sin(y / 7.0)[..., None]
    return np.clip(base + rng.normal(0, noise, (height, width, 3)), 0, 1).astype(np.float32)


def test_small_clean_photos_are_sampled_at_their_own_size_and_noisy_or_large_ones_through_the_working_copy():
    enhancer = Enhancer(tiny_model(), device="cpu", prior="none", work_size=128)
    clean, noisy, large = scene(300, 400, 0.0005), scene(300, 400, 0.01), scene(600, 800, 0.0005)
    assert lifted_noise(clean) < DIRECT_MAX_NOISE < lifted_noise(noisy)
    assert enhancer.working_copy(clean).shape == (300, 400)  # direct: no reconstruction to lose structure in
    assert enhancer.working_copy(noisy).shape == (96, 128)  # area averaging removes the noise brightening lifts
    assert enhancer.working_copy(large).shape == (96, 128)  # over direct_size (640): cost must not grow with size
    assert Enhancer(tiny_model(), device="cpu", prior="none", work_size=128, direct_size=0
                    ).working_copy(clean).shape == (96, 128)
    assert Enhancer(tiny_model(), device="cpu", prior="none", work_size=128, full_res=True
                    ).working_copy(large).shape == (600, 800)
