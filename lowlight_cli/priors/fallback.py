"""The built-in region prior: graph-based segmentation of a brightened, denoised copy.

Used when SAM weights are not available and as SAM's stand-in during
training on machines without them. Felzenszwalb's method is fast (tens of
milliseconds at working resolution) and, like SAM's automatic masks,
produces object-ish regions that follow edges rather than a grid.
"""

from __future__ import annotations

import cv2
import numpy as np

from lowlight_cli.imaging.pixels import quantise
from lowlight_cli.priors.region_prior import RegionPrior


def prepare_for_segmentation(base_rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB with noise suppressed: segmenters trained or tuned on clean images split noise otherwise."""
    image = quantise(base_rgb)
    return cv2.bilateralFilter(image, d=7, sigmaColor=40, sigmaSpace=5)


def fallback_prior(base_rgb: np.ndarray, max_regions: int = 64, coarseness: float = 1.0) -> RegionPrior:
    """Felzenszwalb regions of `base_rgb` (H×W×3 float in [0,1], already brightened).

    `coarseness` (> 0) multiplies the merge threshold and the minimum region
    size: 2 gives SICE's validation photos at 384 px a median of 12 regions
    instead of 27, close to what a 128-px training crop holds. Inference
    keeps 1, because 2 trades SICE val for casts and noise
    (`benchmarks/ensembles.py` compares the two).
    """
    from skimage.segmentation import felzenszwalb

    image = prepare_for_segmentation(base_rgb)
    height, width = image.shape[:2]
    # Scale the merge threshold and minimum size with the image area so the
    # region count stays roughly constant across working resolutions.
    area = height * width
    min_size = int(max(8, area // (max_regions * 6)) * coarseness)
    labels = felzenszwalb(image, scale=max(50.0, area / 400.0) * coarseness, sigma=0.8, min_size=min_size)
    return RegionPrior.from_labels(labels + 1, source="fallback", max_regions=max_regions)
