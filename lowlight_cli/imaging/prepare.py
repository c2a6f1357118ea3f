"""From a decoded photo to the working-resolution tensors the denoiser needs.

Sampling happens at a working resolution (long side ≤ `work_size`) so that
cost does not grow with the photo: downscaling with area averaging also
averages away most sensor noise before the model ever sees it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np
import torch

# (1,3,H,W) working copy → (base, log gain): `models.condition.develop` bound to a model.
Develop = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class WorkingCopy:
    """The photo at working resolution, its brightened base and exposure gain."""

    low: np.ndarray  # H×W×3 float32, working resolution
    base: np.ndarray  # H×W×3 float32, brightened (what the prior is computed on)
    log_gain: float
    # The full-resolution photo developed as `base` was: a function of a band of rows, which gives its (3,n,W)
    # planes (the reconstruction's base, made strip by strip).
    develop_full: Callable[[np.ndarray], Callable[[slice], np.ndarray]]
    held: float = 0.0  # share of the photo handed back as it is (`tone.hold_exposed`: it needs no development)

    @property
    def shape(self) -> tuple[int, int]:
        return self.low.shape[:2]


def working_size(height: int, width: int, work_size: int) -> tuple[int, int]:
    """(h, w) with the long side at most `work_size`, aspect ratio kept."""
    scale = min(1.0, work_size / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area averaging when shrinking (noise-reducing), bilinear when enlarging."""
    if image.shape[:2] == (height, width):
        return image
    shrinking = height < image.shape[0] or width < image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def shrink(rgb: np.ndarray, work_size: int) -> np.ndarray:
    """The photo at working size (long side at most `work_size`), float32."""
    height, width = working_size(*cast(tuple[int, int], rgb.shape[:2]), work_size)
    return np.ascontiguousarray(resize(rgb, height, width), dtype=np.float32)


def developed(
    low: np.ndarray,
    develop: Develop,
    develop_full: Callable[[np.ndarray], Callable[[slice], np.ndarray]],
    held: float = 0.0,
) -> WorkingCopy:
    """A working-resolution `low` with the base `develop` makes of it (video develops with a shot's tone),
    `develop_full`, the same development for the full-resolution photo, and the share `held` as it is."""
    with torch.no_grad():
        base, log_gain = develop(to_tensor(low))
    return WorkingCopy(low, to_numpy(base), float(log_gain[0]), develop_full, held)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """H×W×3 float → (1,3,H,W)."""
    return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """(1,3,H,W) → H×W×3 float32."""
    return tensor[0].permute(1, 2, 0).float().cpu().numpy()
