"""The camera-like low-light synthesis: colours survive the Bayer round trip, noise behaves like a sensor's."""

from __future__ import annotations

import numpy as np

from lowlight_cli.training.synth import DarkeningParams, darken, recast, sensor_noise, smooth_chroma


def test_noiseless_mosaic_round_trip_keeps_colours():
    # A wrong Bayer pattern swaps red and blue; flat colour patches show it at once.
    image = np.zeros((16, 16, 3), np.float32)
    image[:, :8] = (0.4, 0.1, 0.05)
    image[:, 8:] = (0.05, 0.2, 0.5)
    out = sensor_noise(image, shot=0.0, read=0.0, sensor_gains=(2.0, 1.0, 1.5), rng=np.random.default_rng(0))
    np.testing.assert_allclose(out[4:12, 1:6], image[4:12, 1:6], atol=1e-3)
    np.testing.assert_allclose(out[4:12, 10:15], image[4:12, 10:15], atol=1e-3)


def test_white_balance_gains_make_red_and_blue_noisier_than_green():
    grey = np.full((64, 64, 3), 0.05, np.float32)
    out = sensor_noise(grey, shot=1e-3, read=2e-3, sensor_gains=(2.4, 1.0, 2.0), rng=np.random.default_rng(0))
    std = out[4:-4, 4:-4].reshape(-1, 3).std(axis=0)
    assert std[0] > 1.5 * std[1] and std[2] > 1.3 * std[1]
    assert abs(out.mean() - 0.05) < 0.005  # zero-mean noise: the black level does not shift the image


def test_chroma_smoothing_keeps_luma_and_flattens_colour_noise():
    rng = np.random.default_rng(0)
    noisy = 0.2 + 0.05 * rng.standard_normal((64, 64, 3)).astype(np.float32)
    smoothed = smooth_chroma(noisy, 2.0)
    luma = np.array([0.299, 0.587, 0.114], np.float32)
    np.testing.assert_allclose(smoothed @ luma, noisy @ luma, atol=1e-4)
    assert (smoothed[..., 0] - smoothed[..., 1]).std() < 0.5 * (noisy[..., 0] - noisy[..., 1]).std()


def test_darken_and_recast_make_dark_uint8_photos():
    rng = np.random.default_rng(3)
    image = rng.uniform(0.2, 0.9, (40, 50, 3)).astype(np.float32)
    for _ in range(5):
        dark = darken(image, DarkeningParams.sample(rng), rng)
        assert dark.dtype == np.uint8 and dark.shape == image.shape
        assert dark.mean() < image.mean() * 255 * 0.75
    again = recast(dark, rng, extra_noise=1.0)
    assert again.dtype == np.uint8 and again.shape == dark.shape
