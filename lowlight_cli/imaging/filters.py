"""Filters: the box filters and the one guided filter (He et al.) that shadow noise and local exposure use.

There are two box filters because they differ at the edges, and the models'
outputs depend on it: `box` (numpy, OpenCV, the window reflected at the
border) serves the working-size numerics of `shadow_noise` and `reconstruct`;
`box_clipped` (torch, prefix sums, the window clipped at the border, so its
cost does not grow with the radius) serves `models.local_exposure`, whose
large windows run on the model's device. `guided_coefficients` takes either.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import cv2
import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def box(image: np.ndarray, radius: int) -> np.ndarray:
    """The mean over each pixel's (2·radius+1)² window, reflected at the border (H×W or H×W×C)."""
    return cv2.boxFilter(image, -1, (2 * radius + 1, 2 * radius + 1), borderType=cv2.BORDER_REFLECT)


def _box_along(x: torch.Tensor, dim: int, radius: int) -> torch.Tensor:
    """Mean over a window of ±`radius` along `dim`, clipped at the image's edges, from prefix sums (the cost
    does not grow with the radius)."""
    n = x.shape[dim]
    sums = torch.cumsum(x.double(), dim)  # float64: no cancellation in the differences of long prefix sums
    sums = torch.cat([torch.zeros_like(sums.narrow(dim, 0, 1)), sums], dim)
    index = torch.arange(n, device=x.device)
    hi, lo = (index + radius + 1).clamp(max=n), (index - radius).clamp(min=0)
    shape = [1] * x.dim()
    shape[dim] = n
    window = (sums.index_select(dim, hi) - sums.index_select(dim, lo)) / (hi - lo).view(shape)
    return window.to(x.dtype)


def box_clipped(x: torch.Tensor, radius: int) -> torch.Tensor:
    """(B,C,H,W) → the mean over each pixel's (2·radius+1)² window (clipped at the edges)."""
    return _box_along(_box_along(x, -1, radius), -2, radius)


def _clamp_min_zero(x: Array) -> Array:
    return np.maximum(x, 0.0) if isinstance(x, np.ndarray) else x.clamp_min(0.0)


def guided_coefficients(
    guide: Array, target: Array, eps: float | Array, window_mean: Callable[[Array], Array]
) -> tuple[Array, Array]:
    """The guided filter with a one-channel guide: the window-averaged (a, b) of target ≈ a·guide + b, so
    `a * guide + b` is the filtered target (or, upsampled first, He & Sun's fast guided filter).

    `eps` (a number or per pixel) is the variance under which the guide's structure counts as noise and is
    smoothed; `window_mean` is a box filter of the radius wanted. Passing `target is guide` makes it
    self-guided (edge-preserving smoothing of the guide itself).
    """
    mean_guide = window_mean(guide)
    var_guide = _clamp_min_zero(window_mean(guide * guide) - mean_guide * mean_guide)
    if target is guide:
        mean_target, covariance = mean_guide, var_guide
    else:
        mean_target = window_mean(target)
        covariance = window_mean(guide * target) - mean_guide * mean_target
    a = covariance / (var_guide + eps)
    b = mean_target - a * mean_guide
    return window_mean(a), window_mean(b)
