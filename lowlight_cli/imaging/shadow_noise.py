"""Quieting the noise that brightening lifts out of near-black regions.

Where a photo was close to black (a night sky, deep shadow) the auto-gamma
base applies a 10–30× gain, and whatever the network leaves of the JPEG
quantisation and sensor noise there comes out as coloured blotches. The
expected noise of the working output is known well enough to act on: the
input's noise level times the local gain. A self-guided filter on the luma and
on each colour difference, whose regularisation ε is that expected variance,
smooths exactly where the gain made noise louder than the structure (flat,
variance ≲ ε) and leaves edges, colour edges included, and well-exposed
regions, where ε is tiny, as they are.

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


def input_noise_sigma(low_plane: np.ndarray) -> float:
    """Noise σ of one plane (the luma, a colour difference) of the working-size input, from its high-pass,
    floored at 8-bit quantisation."""
    return max(estimate_noise(low_plane - cv2.GaussianBlur(low_plane, (0, 0), 1.0)), QUANTISATION_SIGMA)


def local_gain(low_luma: np.ndarray, out_luma: np.ndarray, radius: int) -> np.ndarray:
    """How many times brighter the output is than the input, per pixel, over windows of `radius`."""
    return box(out_luma, radius) / np.maximum(box(low_luma, radius), 1e-3)


def expected_noise(low_plane: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """Per-pixel σ one plane of the output would have if it carried the input plane's noise at `gain`."""
    return input_noise_sigma(low_plane) * gain


CHROMA_STRENGTH = 8.0  # the colour differences' ε over the luma's, in σ: chroma noise goes nearly as when colour
# followed the luma guide, a colour edge many σ strong (a colour checker's patches) stays


def colour_planes(rgb: np.ndarray) -> list[np.ndarray]:
    """Rec.601 luma and the red and blue differences from it (contiguous H×W planes)."""
    y = luma(rgb, REC601)
    return [y, np.ascontiguousarray(rgb[..., 0] - y), np.ascontiguousarray(rgb[..., 2] - y)]


def from_planes(y: np.ndarray, red: np.ndarray, blue: np.ndarray) -> np.ndarray:
    """H×W×3 RGB from `colour_planes`."""
    red, blue = red + y, blue + y
    green = (y - REC601[0] * red - REC601[2] * blue) / REC601[1]
    return np.stack([red, green, blue], axis=-1)


def suppress_shadow_noise(low: np.ndarray, out: np.ndarray, strength: float, radius: int = 5) -> np.ndarray:
    """`out` with amplified noise smoothed: its luma and two colour differences each self-guided, with ε =
    (strength · expected σ)² for the luma and `CHROMA_STRENGTH` times that strength for the colour.

    `low` and `out` are the working-resolution input and output (H×W×3 float
    in [0,1]); `radius` is for a 384-px working copy and scales with its size.
    strength 0 returns `out` unchanged. Colour is filtered on its own planes,
    so a colour edge the gain did not drown is kept: with the luma as every
    channel's guide, colour followed luminance and LIME_3's colour checker,
    patches side by side at one luminance, came out grey (its mean chroma 0.44
    of a plain gamma's; 0.56 with no filter at all).
    """
    if strength <= 0:
        return out
    radius = max(1, round(radius * max(out.shape[:2]) / REFERENCE_SIDE))
    window_mean = partial(box, radius=radius)
    dark, bright = colour_planes(low), colour_planes(out)
    gain = local_gain(dark[0], bright[0], radius)
    filtered = []
    for index, (before, plane) in enumerate(zip(dark, bright, strict=True)):
        scale = strength * (1.0 if index == 0 else CHROMA_STRENGTH)
        eps = (scale * expected_noise(before, gain)) ** 2 + 1e-6
        a, b = guided_coefficients(plane, plane, eps, window_mean)
        filtered.append(a * plane + b)
    return np.clip(from_planes(*filtered), 0.0, 1.0).astype(np.float32)
