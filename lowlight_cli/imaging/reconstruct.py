"""From the working-resolution result back to the full-resolution photo.

The model runs on a working copy (long side `--work-size`); the photo has
far more pixels. The full photo is developed by the same tone judgement as
its working copy (`models.condition.develop_full`: exposure, white balance,
curve, saturation, every pixel through the curve itself), and what the
model changed at working size (output minus base: noise taken off, local
colour and contrast) is upsampled and added. So the fine detail the model
never saw comes through at the curve's own gain.

An earlier design fitted a local linear colour transform (He et al.'s
guided filter) from the working input to the working output and applied it
to the full input. Its regulariser flattened the fitted gain wherever a
dark photo's local contrast was of the order of its noise, which is where
most texture lives: grass, stone, skin smeared (the 40 unpaired-dev photos
over 640 px scored NIQE 4.9 / BRISQUE 35 with it, docs/EXPERIMENTS.md).

Developing every pixel also develops its noise. The detail (full base minus
the upsampled working base) splits into a grey part and a colour part. The
colour part is where noise is ugliest, coloured speckles, and texture has
least to lose: it keeps only what stands above `noise_threshold` σ of its
noise. The grey part is shrunk by its signal-to-noise ratio in the input
(a Wiener gain, measured before any gain amplified it), never below
`GREY_KEPT`: a flat noisy wall keeps half its grain, a textured one all of
its texture.
"""

from __future__ import annotations

import cv2
import numpy as np

from lowlight_cli.imaging.filters import box

FLAT_SIGMA = 1e-4  # under 1/40 of an 8-bit level: a synthetic flat area (letterbox, clipped sky), not noise
GREY_KEPT = 0.5  # the least share of the grey detail kept where the input's detail is all noise
SNR_RADIUS = 2  # full-resolution window (2r+1)² over which the input's detail variance is measured


def estimate_noise(detail: np.ndarray) -> float:
    """Robust noise sigma of a zero-mean detail layer (median absolute deviation)."""
    sample = detail[:: max(1, detail.shape[0] // 512), :: max(1, detail.shape[1] // 512)]
    return float(np.median(np.abs(sample)) / 0.6745) + 1e-6


def upsample(image: np.ndarray, height: int, width: int, out: np.ndarray | None = None) -> np.ndarray:
    """Bilinear upsampling to height×width, pixel-centre aligned, edges replicated; into `out` if given.

    OpenCV's resize is separable and vectorised: at 12 MP it upsamples a
    plane several times faster than a remap through per-pixel coordinates.
    Writing into one reused buffer matters as much: every fresh 48 MB plane
    costs its page faults again.
    """
    result = cv2.resize(image, (width, height), dst=out, interpolation=cv2.INTER_LINEAR)
    if out is not None and result is not out:  # OpenCV allocates anew when dtype or shape differ from `out`
        out[...] = result
        return out
    return result


def band_rows(height: int, band: int = 64, bands: int = 8) -> list[slice]:
    """The row bands, spread over the height, in which a photo's noise is measured (all of it when short)."""
    if height <= band * bands:
        return [slice(0, height)]
    return [slice(top, top + band) for top in np.linspace(0, height - band, bands).round().astype(int).tolist()]


def photo_noise(bands: list[np.ndarray]) -> float:
    """Noise sigma of a detail layer (a full-resolution photo minus its working copy upsampled), from its
    `band_rows` bands: the median over the bands that show any noise at all, so a black or clipped top
    (letterbox, night sky) does not switch the threshold off for the whole photo."""
    sigmas = [estimate_noise(band) for band in bands]
    noisy = [sigma for sigma in sigmas if sigma > FLAT_SIGMA]
    return float(np.median(noisy or sigmas))


def reconstruct(
    full_input: np.ndarray,
    full_base: np.ndarray,
    work_input: np.ndarray,
    work_base: np.ndarray,
    work_output: np.ndarray,
    noise_threshold: float = 2.0,
) -> np.ndarray:
    """The full-resolution result (H×W×3): `full_base` ((3,H,W) planes: the photo developed as its working
    copy was), the model's change of the working copy (`work_output` − `work_base`) upsampled onto it, the
    detail's colour soft-thresholded at `noise_threshold` σ and its grey part shrunk by the input's
    signal-to-noise ratio.

    `full_base` is consumed (its planes hold the detail), so a 12 MP photo needs the input, this and the
    result, and a few planes besides; planes, not interleaved pixels, keep every pass contiguous.
    """
    height, width = full_input.shape[:2]
    rows = band_rows(height)
    plane = np.empty((height, width), np.float32)
    detail = full_base
    for j in range(3):
        detail[j] -= upsample(np.ascontiguousarray(work_base[..., j]), height, width, out=plane)
    threshold = noise_threshold * photo_noise([detail[:, r] for r in rows])
    grey = detail[0] + detail[1]
    grey += detail[2]
    grey /= 3.0
    kept = grey_weight(full_input, work_input, plane, rows)
    kept *= grey
    out = np.empty((height, width, 3), np.float32)
    for j in range(3):
        colour = detail[j]
        colour -= grey
        colour -= np.clip(colour, -threshold, threshold, out=plane)  # soft: only what stands above it is kept
        colour += kept
        colour += upsample(np.ascontiguousarray(work_output[..., j]), height, width, out=plane)
        out[..., j] = np.clip(colour, 0.0, 1.0, out=colour)
    return out


def grey_weight(full_input: np.ndarray, work_input: np.ndarray, plane: np.ndarray, rows: list[slice]) -> np.ndarray:
    """The share (H×W, `GREY_KEPT` to 1) of the grey detail kept: a Wiener gain 1 − σ²/local variance of the
    input's own grey detail over its working copy, where σ is that detail's noise, measured in `rows`
    (`plane`: a scratch buffer).

    Measured in the input, before the curve's gain: the same texture counts alike in a shadow and in a
    highlight, and the noise level is one number for the photo.
    """
    height, width = full_input.shape[:2]
    bands = [np.empty((3, r.stop - r.start, width), np.float32) for r in rows]
    grey = np.zeros((height, width), np.float32)
    for j in range(3):
        upsample(np.ascontiguousarray(work_input[..., j]), height, width, out=plane)
        for band, r in zip(bands, rows, strict=True):
            np.subtract(full_input[r, :, j], plane[r], out=band[j])
        plane -= full_input[..., j]
        grey -= plane
    grey /= 3.0
    sigma = photo_noise(bands)
    variance = box(grey * grey, SNR_RADIUS)
    return np.clip(1.0 - sigma * sigma / np.maximum(variance, 1e-12), GREY_KEPT, 1.0, out=variance)
