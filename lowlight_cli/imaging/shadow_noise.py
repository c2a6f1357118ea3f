"""Quieting the noise that brightening lifts out of near-black regions.

Where a photo was close to black (a night sky, deep shadow) the auto-gamma
base applies a 10–30× gain, and whatever the network leaves of the JPEG
quantisation and sensor noise there comes out as coloured blotches. The
expected noise of the working output is known well enough to act on: the
input's noise level times the local gain. A self-guided filter whose
regularisation ε is that expected variance smooths exactly where the gain made
noise louder than the structure (flat, variance ≲ ε) and leaves edges and
well-exposed regions, where ε is tiny, as they are.

It runs on the working-resolution output, before reconstruction, so the
full-resolution result inherits it and video gets it frame by frame.
"""

from __future__ import annotations

from functools import partial

import cv2
import numpy as np

from lowlight_cli.imaging.colour import REC601, luma
from lowlight_cli.imaging.filters import box, guided_coefficients
from lowlight_cli.imaging.reconstruct import estimate_noise

QUANTISATION_SIGMA = 1.0 / (255.0 * np.sqrt(12.0))  # an 8-bit photo's noise floor, even where MAD says 0
REFERENCE_SIDE = 384  # the filter radius scales with the working copy's long side from this


def input_noise_sigma(low_luma: np.ndarray) -> float:
    """Noise σ of the (working-size) input's luma, from its high-pass, floored at 8-bit quantisation."""
    return max(estimate_noise(low_luma - cv2.GaussianBlur(low_luma, (0, 0), 1.0)), QUANTISATION_SIGMA)


def expected_noise(low_luma: np.ndarray, out_luma: np.ndarray, radius: int) -> np.ndarray:
    """Per-pixel σ the output would have if it carried the input's noise at the local gain."""
    gain = box(out_luma, radius) / np.maximum(box(low_luma, radius), 1e-3)
    return input_noise_sigma(low_luma) * gain


def suppress_shadow_noise(low: np.ndarray, out: np.ndarray, strength: float, radius: int = 5) -> np.ndarray:
    """`out` with amplified noise smoothed: a self-guided filter with ε = (strength · expected σ)².

    `low` and `out` are the working-resolution input and output (H×W×3 float
    in [0,1]); `radius` is for a 384-px working copy and scales with its size.
    strength 0 returns `out` unchanged.
    """
    if strength <= 0:
        return out
    radius = max(1, round(radius * max(out.shape[:2]) / REFERENCE_SIDE))
    guide = luma(out, REC601)  # the weights of the auto-gamma base, whose gain lifted the noise
    eps = (strength * expected_noise(luma(low, REC601), guide, radius)) ** 2 + 1e-6
    window_mean = partial(box, radius=radius)
    result = np.empty_like(out)
    for channel in range(3):  # colour follows the luminance guide, so chroma blotches in flat areas go too
        a, b = guided_coefficients(guide, np.ascontiguousarray(out[..., channel]), eps, window_mean)
        result[..., channel] = a * guide + b
    return np.clip(result, 0.0, 1.0).astype(np.float32)
