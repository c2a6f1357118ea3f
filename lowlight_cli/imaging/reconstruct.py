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

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from lowlight_cli.imaging.filters import box

FLAT_SIGMA = 1e-4  # under 1/40 of an 8-bit level: a synthetic flat area (letterbox, clipped sky), not noise
GREY_KEPT = 0.5  # the least share of the grey detail kept where the input's detail is all noise
SNR_RADIUS = 2  # full-resolution window (2r+1)² over which the input's detail variance is measured
STRIP = 64  # rows of the full photo made at once: a few MB per plane, in the cache for every pass


def estimate_noise(detail: np.ndarray) -> float:
    """Robust noise sigma of a zero-mean detail layer (median absolute deviation)."""
    sample = detail[:: max(1, detail.shape[0] // 512), :: max(1, detail.shape[1] // 512)]
    return float(np.median(np.abs(sample)) / 0.6745) + 1e-6


def upsample(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear upsampling to height×width, pixel-centre aligned, edges replicated (OpenCV's `INTER_LINEAR`):
    what `upsample_rows` gives strip by strip, and the tests' reference for it."""
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def upsample_rows(image: np.ndarray, height: int, width: int, rows: slice) -> np.ndarray:
    """Rows `rows` of `upsample(image, height, width)` (h×w or h×w×C), made from the few source rows they
    need: OpenCV widens those rows (a resize to the same height only interpolates across), and each output
    row mixes its two source rows at the same pixel-centre position OpenCV uses, so a strip costs its own
    share of the work and a 12 MP photo never holds a whole upsampled plane."""
    source = image.shape[0]
    centre = (np.arange(rows.start, rows.stop, dtype=np.float64) + 0.5) * (source / height) - 0.5
    top = np.floor(centre).astype(np.int64)
    share = (centre - top).astype(np.float32)
    share[top < 0] = 0.0
    top = np.clip(top, 0, source - 1)
    below = np.minimum(top + 1, source - 1)
    first, last = int(top[0]), int(below[-1]) + 1
    block = image[first:last]
    if len(block) == 1:  # OpenCV widens a single row with other weights (1e-5 off), two rows exactly
        block = block.repeat(2, axis=0)
    wide = cv2.resize(np.ascontiguousarray(block), (width, len(block)), interpolation=cv2.INTER_LINEAR)
    wide = wide.reshape(len(block), width, -1)
    share = share[:, None, None]
    out = wide[top - first] * (1.0 - share)
    out += wide[below - first] * share
    return out.reshape((len(top), width) + image.shape[2:])


def band_rows(height: int, band: int = 64, bands: int = 8) -> list[slice]:
    """The row bands, spread over the height, in which a photo's noise is measured (all of it when short)."""
    if height <= band * bands:
        return [slice(0, height)]
    return [slice(top, top + band) for top in np.linspace(0, height - band, bands).round().astype(int).tolist()]


def strips(height: int, bands: list[slice]) -> list[slice]:
    """Consecutive strips of at most `STRIP` rows covering the height, with each noise band one of them (its
    development is then made once)."""
    edges = sorted({0, height} | {edge for band in bands for edge in (band.start, band.stop)})
    return [
        slice(top, min(top + STRIP, stop))
        for start, stop in zip(edges[:-1], edges[1:], strict=True)
        for top in range(start, stop, STRIP)
    ]


def photo_noise(bands: list[np.ndarray]) -> float:
    """Noise sigma of a detail layer (a full-resolution photo minus its working copy upsampled), from its
    `band_rows` bands: the median over the bands that show any noise at all, so a black or clipped top
    (letterbox, night sky) does not switch the threshold off for the whole photo."""
    sigmas = [estimate_noise(band) for band in bands]
    noisy = [sigma for sigma in sigmas if sigma > FLAT_SIGMA]
    return float(np.median(noisy or sigmas))


def reconstruct(
    full_input: np.ndarray,
    develop_rows: Callable[[slice], np.ndarray],
    work_input: np.ndarray,
    work_base: np.ndarray,
    work_output: np.ndarray,
    noise_threshold: float = 2.0,
    workers: int = 1,
) -> np.ndarray:
    """The full-resolution result (H×W×3): the photo developed as its working copy was (`develop_rows`, the
    (3,n,W) planes of a band of rows), the model's change of the working copy (`work_output` − `work_base`)
    upsampled onto it, the detail's colour soft-thresholded at `noise_threshold` σ and its grey part shrunk
    by the input's signal-to-noise ratio.

    The photo's two noise levels are measured first, in `band_rows`; then `strips` of up to `STRIP` rows are
    made start to end on `workers` threads (numpy and OpenCV release the GIL): each strip's planes stay in the
    cache through every pass, and a 12 MP photo needs only its input, the result and a few strips.
    """
    height, width = full_input.shape[:2]
    bands = band_rows(height)
    cover = strips(height, bands)
    # the bands' strips are developed once, kept for their own turn below (a short photo's one band is all)
    developed = {(r.start, r.stop): develop_rows(r) for r in cover if any(b.start <= r.start < b.stop for b in bands)}

    def band_planes(band: slice) -> np.ndarray:
        return np.concatenate([developed[r.start, r.stop] for r in cover if band.start <= r.start < band.stop], axis=1)

    threshold = noise_threshold * photo_noise(
        [band_planes(r) - _planes(upsample_rows(work_base, height, width, r)) for r in bands]
    )
    sigma = photo_noise([_planes(full_input[r] - upsample_rows(work_input, height, width, r)) for r in bands])
    out = np.empty((height, width, 3), np.float32)

    def strip(rows: slice) -> None:
        planes = developed.pop((rows.start, rows.stop), None)
        detail = develop_rows(rows) if planes is None else planes
        detail -= _planes(upsample_rows(work_base, height, width, rows))
        grey = detail.mean(axis=0)
        kept = grey_weight(full_input, work_input, rows, sigma) * grey
        change = _planes(upsample_rows(work_output, height, width, rows))
        for j in range(3):
            colour = detail[j]
            colour -= grey
            colour -= np.clip(colour, -threshold, threshold)  # soft: only what stands above it is kept
            colour += kept
            colour += change[j]
            out[rows, :, j] = np.clip(colour, 0.0, 1.0, out=colour)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        list(pool.map(strip, cover))
    return out


def _planes(image: np.ndarray) -> np.ndarray:
    """H×W×3 → (3,H,W), contiguous: each pass then runs over one plane's contiguous memory."""
    return np.ascontiguousarray(np.moveaxis(image, -1, 0))


def grey_weight(full_input: np.ndarray, work_input: np.ndarray, rows: slice, sigma: float) -> np.ndarray:
    """The share (n×W, `GREY_KEPT` to 1) of the grey detail kept in `rows`: a Wiener gain 1 − σ²/local
    variance of the input's own grey detail over its working copy, σ being that detail's noise.

    Measured in the input, before the curve's gain: the same texture counts alike in a shadow and in a
    highlight, and the noise level is one number for the photo. The variance window reaches `SNR_RADIUS`
    rows past the strip, so strips give what the whole photo would.
    """
    height, width = full_input.shape[:2]
    reach = slice(max(rows.start - SNR_RADIUS, 0), min(rows.stop + SNR_RADIUS, height))
    detail = full_input[reach] - upsample_rows(work_input, height, width, reach)
    grey = detail.mean(axis=2)
    variance = box(grey * grey, SNR_RADIUS)[rows.start - reach.start : rows.stop - reach.start]
    return np.clip(1.0 - sigma * sigma / np.maximum(variance, 1e-12), GREY_KEPT, 1.0, out=variance)
