"""Synthetic low-light from well-exposed photos, the way a camera makes it.

Real dark photos are not just dim: they carry shot and read noise amplified
by the camera's gain, a white-balance error, and JPEG artefacts on top.
Each of those is applied in the space where it physically happens:
exposure, cast and noise in linear light, compression after re-encoding.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055)


@dataclass(frozen=True)
class DarkeningParams:
    """One draw of the degradation."""

    exposure: float
    wb_gains: tuple[float, float, float]
    shot: float
    read: float
    jpeg_quality: int | None

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "DarkeningParams":
        exposure = float(np.exp(rng.uniform(np.log(1 / 50), np.log(1 / 4))))
        if rng.random() < 0.7:
            # Casts as strong as real tungsten / sodium / LED night shots.
            red, blue = np.exp(rng.normal(0.0, 0.25, size=2))
            green = float(np.exp(rng.normal(0.0, 0.08)))
            gains = (float(red), green, float(blue))
        else:
            gains = (1.0, 1.0, 1.0)
        shot = float(np.exp(rng.uniform(np.log(2e-4), np.log(8e-3))))
        read = float(np.exp(rng.uniform(np.log(2e-4), np.log(4e-3))))
        quality = int(rng.integers(60, 96)) if rng.random() < 0.5 else None
        return cls(exposure, gains, shot, read, quality)


def darken(image: np.ndarray, params: DarkeningParams, rng: np.random.Generator) -> np.ndarray:
    """Degrade a well-exposed sRGB float image (H×W×3 in [0,1]) into a dark uint8 photo."""
    linear = srgb_to_linear(image.astype(np.float32))
    linear = linear * params.exposure * np.asarray(params.wb_gains, np.float32)
    variance = params.shot * linear + params.read ** 2
    noisy = linear + rng.standard_normal(linear.shape).astype(np.float32) * np.sqrt(variance)
    out = (linear_to_srgb(noisy) * 255.0 + 0.5).astype(np.uint8)
    if params.jpeg_quality is not None:
        ok, buf = cv2.imencode(".jpg", out[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, params.jpeg_quality])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]
    return np.ascontiguousarray(out)


def recast(dark: np.ndarray, rng: np.random.Generator, strength: float = 0.2) -> np.ndarray:
    """Add a random white-balance cast and exposure change to an already dark uint8 photo (real pairs)."""
    linear = srgb_to_linear(dark.astype(np.float32) / 255.0)
    gains = np.exp(rng.normal(0.0, strength, size=3)).astype(np.float32)
    gains *= np.float32(np.exp(rng.uniform(np.log(0.6), np.log(1.3))))
    return (linear_to_srgb(linear * gains) * 255.0 + 0.5).astype(np.uint8)
