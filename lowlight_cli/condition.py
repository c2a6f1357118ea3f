"""The conditioning recipe shared by training and inference.

The denoiser never sees the raw dark image alone: it gets a brightened
"base" (luminance gamma chosen so the mean lands near `target_brightness`,
chroma kept) and learns only the residual from base to the well-exposed
image. Brightening is parameter-free and identical in training and
inference, so the network spends its capacity on what a curve cannot do:
noise, colour casts and local contrast.
"""

from __future__ import annotations

import math

import numpy as np
import torch

LUMA = (0.299, 0.587, 0.114)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """Rec.601 luma of a (B,3,H,W) tensor, shape (B,1,H,W)."""
    weights = image.new_tensor(LUMA).view(1, 3, 1, 1)
    return (image * weights).sum(dim=1, keepdim=True)


def brighten(low: torch.Tensor, target_brightness: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Auto-gamma on luminance with chroma kept.

    Returns the base image (B,3,H,W) in [0,1] and log(mean gain) per image (B,),
    which tells the network how much the noise was amplified.
    """
    lum = luminance(low).clamp_min(1e-4)
    mean = lum.mean(dim=(1, 2, 3)).clamp(1e-4, 0.99)
    gamma = (math.log(target_brightness) / torch.log(mean)).clamp(0.15, 1.0)
    ratio = lum ** gamma.view(-1, 1, 1, 1) / lum
    base = (low * ratio).clamp(0.0, 1.0)
    log_gain = torch.log(luminance(base).mean(dim=(1, 2, 3)).clamp_min(1e-4) / mean)
    return base, log_gain


def brighten_array(rgb: np.ndarray, target_brightness: float) -> np.ndarray:
    """`brighten` for one H×W×3 float array in [0,1] (priors, the classical reference)."""
    tensor = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1)[None]
    base, _ = brighten(tensor, target_brightness)
    return base[0].permute(1, 2, 0).numpy()
