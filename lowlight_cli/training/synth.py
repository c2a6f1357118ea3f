"""Synthetic low-light from well-exposed photos, the way a camera makes it.

Real dark photos are not just dim. Their noise is born on a Bayer sensor,
before the camera's white-balance gains, so red and blue are noisier than
green and the noise is spatially correlated by demosaicing; many cameras then
smooth chroma, which turns that noise into colour blotches; the white balance
is wrong under tungsten, sodium or LED light; and JPEG comes last. Each step
is applied in the space where it physically happens, so a model trained on
these pairs meets the noise and casts of real photos rather than i.i.d.
Gaussian noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np

from lowlight_cli.imaging.colour import REC601
from lowlight_cli.imaging.pixels import quantise

# OpenCV names Bayer patterns by the second row; COLOR_BayerRGGB2RGB is the unambiguous alias.
_DEMOSAIC = getattr(cv2, "COLOR_BayerRGGB2RGB", cv2.COLOR_BayerBG2RGB)
_BLACK_LEVEL = 0.0625  # headroom so negative read noise survives the uint16 demosaic, as on a real sensor
_RGB_TO_YCC = np.array([REC601, [-0.169, -0.331, 0.5], [0.5, -0.419, -0.081]], np.float32)  # JPEG's YCbCr
_YCC_TO_RGB = np.linalg.inv(_RGB_TO_YCC).astype(np.float32)


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def decode_srgb8(image: np.ndarray) -> np.ndarray:
    """uint8 sRGB → float32 linear light."""
    return srgb_to_linear(image.astype(np.float32) / 255.0)


def encode_srgb8(linear: np.ndarray) -> np.ndarray:
    """Linear light → uint8 sRGB (clipped)."""
    return quantise(linear_to_srgb(linear))


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def sample_cast(rng: np.random.Generator) -> tuple[float, float, float]:
    """A white-balance error: mostly mild, sometimes as strong as tungsten, sodium or LED light."""
    kind = rng.random()
    if kind < 0.3:
        return (1.0, 1.0, 1.0)
    if kind < 0.5:  # warm: tungsten, sodium street lights, candles
        return (float(rng.uniform(1.3, 2.2)), float(rng.uniform(0.95, 1.1)), float(rng.uniform(0.4, 0.8)))
    if kind < 0.6:  # cool or green: LED panels, fluorescent tubes, shade
        return (float(rng.uniform(0.6, 0.9)), float(rng.uniform(1.0, 1.3)), float(rng.uniform(1.0, 1.6)))
    red, blue = np.exp(rng.normal(0.0, 0.25, size=2))
    return (float(red), float(np.exp(rng.normal(0.0, 0.08))), float(blue))


def sample_pedestal(rng: np.random.Generator, share: float = 0.5) -> tuple[float, float, float]:
    """A black level left under the photo (with probability `share`), unequal per channel: cameras we never
    trained on put up to 5 levels of red under a frame whose mean is 7 (irrgb40)."""
    if rng.random() >= share:
        return (0.0, 0.0, 0.0)
    return tuple(float(v) for v in rng.uniform(0.0, 0.0018, size=3) * rng.uniform(0.2, 1.0))  # type: ignore[return-value]


def sample_sensor_gains(rng: np.random.Generator) -> tuple[float, float, float]:
    """A camera's white-balance multipliers (daylight to tungsten range; green is the reference)."""
    return (float(rng.uniform(1.5, 2.4)), 1.0, float(rng.uniform(1.2, 2.0)))


@dataclass(frozen=True)
class DarkeningParams:
    """One draw of the degradation."""

    exposure: float
    wb_gains: tuple[float, float, float]  # the cast left in the photo
    shot: float  # shot-noise gain, in raw units
    read: float  # read-noise std, in raw units
    jpeg_quality: int | None
    sensor_gains: tuple[float, float, float] = (1.0, 1.0, 1.0)  # the camera's white-balance multipliers
    chroma_smoothing: float = 0.0  # sigma (px) of in-camera chroma noise reduction; 0 = none
    pedestal: tuple[float, float, float] = (0.0, 0.0, 0.0)  # linear black level the camera left, per channel

    @classmethod
    def sample_mild(cls, rng: np.random.Generator) -> DarkeningParams:
        """A photo that needs little brightening: exposure 1/4–1, any cast, light noise."""
        return cls(
            exposure=_log_uniform(rng, 1 / 4, 1.0),
            wb_gains=sample_cast(rng),
            shot=_log_uniform(rng, 1e-4, 1e-3),
            read=_log_uniform(rng, 1e-4, 1e-3),
            jpeg_quality=int(rng.integers(60, 96)) if rng.random() < 0.5 else None,
            sensor_gains=sample_sensor_gains(rng),
        )

    @classmethod
    def sample(cls, rng: np.random.Generator) -> DarkeningParams:
        """A dark photo: 2–7 stops under, any cast, sensor noise, sometimes a black pedestal and JPEG."""
        quality = int(rng.integers(60, 96)) if rng.random() < 0.5 else None
        return cls(
            exposure=_log_uniform(rng, 1 / 128, 1 / 4),
            wb_gains=sample_cast(rng),
            shot=_log_uniform(rng, 2e-4, 8e-3),
            read=_log_uniform(rng, 2e-4, 4e-3),
            jpeg_quality=quality,
            sensor_gains=sample_sensor_gains(rng),
            chroma_smoothing=float(rng.uniform(1.0, 3.0)) if rng.random() < 0.3 else 0.0,
            pedestal=sample_pedestal(rng),
        )


def sensor_noise(
    linear: np.ndarray, shot: float, read: float, sensor_gains: tuple[float, float, float], rng: np.random.Generator
) -> np.ndarray:
    """Add shot and read noise on an RGGB mosaic before the camera's white balance, then demosaic.

    `linear` is the white-balanced linear image (H×W×3); the result is too.
    """
    gains = np.asarray(sensor_gains, np.float32)
    raw = linear / gains
    height, width = raw.shape[:2]
    mosaic = np.empty((height, width), np.float32)
    mosaic[0::2, 0::2] = raw[0::2, 0::2, 0]
    mosaic[0::2, 1::2] = raw[0::2, 1::2, 1]
    mosaic[1::2, 0::2] = raw[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = raw[1::2, 1::2, 2]
    variance = shot * np.clip(mosaic, 0.0, None) + read**2
    mosaic = mosaic + rng.standard_normal(mosaic.shape).astype(np.float32) * np.sqrt(variance)
    encoded = quantise(mosaic + _BLACK_LEVEL, 16)
    demosaiced = cv2.cvtColor(encoded, _DEMOSAIC).astype(np.float32) / 65535.0 - _BLACK_LEVEL
    return demosaiced * gains


def smooth_chroma(linear: np.ndarray, sigma: float) -> np.ndarray:
    """In-camera chroma noise reduction: blur colour-difference channels only (makes colour blotches)."""
    ycc = linear @ _RGB_TO_YCC.T
    ycc[..., 1:] = cv2.GaussianBlur(np.ascontiguousarray(ycc[..., 1:]), (0, 0), sigma)
    return ycc @ _YCC_TO_RGB.T


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cast(np.ndarray, cv2.imdecode(buf, cv2.IMREAD_COLOR))[:, :, ::-1] if ok else image


def darken(image: np.ndarray, params: DarkeningParams, rng: np.random.Generator) -> np.ndarray:
    """Degrade a well-exposed sRGB float image (H×W×3 in [0,1]) into a dark uint8 photo."""
    linear = srgb_to_linear(image.astype(np.float32))
    linear = linear * params.exposure * np.asarray(params.wb_gains, np.float32)
    noisy = sensor_noise(linear, params.shot, params.read, params.sensor_gains, rng)
    if params.chroma_smoothing > 0:
        noisy = smooth_chroma(noisy, params.chroma_smoothing)
    out = encode_srgb8(noisy + np.asarray(params.pedestal, np.float32))
    if params.jpeg_quality is not None:
        out = jpeg(out, params.jpeg_quality)
    return np.ascontiguousarray(out)


def recast(dark: np.ndarray, rng: np.random.Generator, extra_noise: float = 0.5) -> np.ndarray:
    """Re-degrade an already dark uint8 photo of a real pair: a new cast, exposure change,
    (with probability `extra_noise`) more sensor noise, and sometimes a black pedestal, so real scenes also
    come with strong casts and lifted blacks."""
    gains = np.asarray(sample_cast(rng), np.float32) * np.float32(_log_uniform(rng, 0.6, 1.3))
    pedestal = np.asarray(sample_pedestal(rng, 0.3), np.float32)  # drawn first: a crop and its thumbnail share it
    linear = decode_srgb8(dark) * gains
    if rng.random() < extra_noise:
        linear = sensor_noise(
            linear, _log_uniform(rng, 1e-4, 2e-3), _log_uniform(rng, 1e-4, 2e-3), sample_sensor_gains(rng), rng
        )
    return encode_srgb8(linear + pedestal)
