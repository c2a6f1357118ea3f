"""PSNR and SSIM for `lowlight eval`, plus the GT-mean variant.

GT-mean (used by several low-light papers) first scales the output so its
mean matches the ground truth's, isolating structure/colour from global
exposure; it is reported separately and labelled, never mixed with plain PSNR.
"""

from __future__ import annotations

import cv2
import numpy as np


def psnr(pred: np.ndarray, target: np.ndarray) -> float:
    mse = float(np.mean((pred.astype(np.float64) - target.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def ssim(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean SSIM over RGB channels (Gaussian window 11, σ 1.5, as Wang et al. 2004) on [0,1] images."""
    c1, c2 = 0.01**2, 0.03**2
    values = []
    for ch in range(pred.shape[2]):
        x = pred[:, :, ch].astype(np.float64)
        y = target[:, :, ch].astype(np.float64)
        blur = lambda im: cv2.GaussianBlur(im, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)  # noqa: E731
        mx, my = blur(x), blur(y)
        sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
        ssim_map = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
        values.append(float(ssim_map[5:-5, 5:-5].mean() if min(x.shape) > 10 else ssim_map.mean()))
    return float(np.mean(values))


def gt_mean_scaled(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """`pred` scaled so its mean over all pixels and channels equals the target's ("GT-mean").

    Some papers' code (LLFlow, Retinexformer) matches the mean of the grey
    image instead; the two agree unless the output's cast differs from the
    target's, so compare GT-mean figures across tools with that in mind.
    """
    scale = float(target.mean()) / max(float(pred.mean()), 1e-6)
    return np.clip(pred * scale, 0.0, 1.0)
