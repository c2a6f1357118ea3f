"""Colour: the one luma, with the two weightings the package uses named.

Both go through `luma`; they are not interchangeable, and each caller names
the one it was built (and its models trained) with:

- `REC601` (0.299, 0.587, 0.114), the luma Y′ of gamma-encoded (sRGB) values:
  what the auto-gamma base brightens by (`models.condition.brighten`, the
  first-release models' develop and the `auto-gamma` baseline), and the guide
  and noise measure of the shadow-noise filter, which measures noise in the
  quantity that base amplified.
- `REC709` (0.2126, 0.7152, 0.0722), the relative luminance Y of *linear*
  light with sRGB primaries: what the tone branch exposes and curves
  (`models.tone`), and how a gray photo's result becomes one channel again
  (`io.images.to_gray`).

Swapping one for the other changes every output, so neither is a default.
Torch-free: a tensor is handled through its own methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, overload

import numpy as np

if TYPE_CHECKING:
    import torch

REC601 = (0.299, 0.587, 0.114)  # Y′ of gamma-encoded values
REC709 = (0.2126, 0.7152, 0.0722)  # Y of linear light


@overload
def luma(rgb: np.ndarray, weights: tuple[float, float, float]) -> np.ndarray: ...
@overload
def luma(rgb: torch.Tensor, weights: tuple[float, float, float]) -> torch.Tensor: ...
def luma(rgb: np.ndarray | torch.Tensor, weights: tuple[float, float, float]) -> np.ndarray | torch.Tensor:
    """The weighted sum of the colour channels: an H×W×3 array gives an H×W one (float32 weights, contiguous),
    a (B,3,H,W) tensor a (B,1,H,W) one."""
    if isinstance(rgb, np.ndarray):
        return np.ascontiguousarray(rgb @ np.asarray(weights, np.float32))
    return (rgb * rgb.new_tensor(weights).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
