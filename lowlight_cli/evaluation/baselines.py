"""Classical references for `lowlight eval --method`: what the model must clearly beat."""

from __future__ import annotations

import cv2
import numpy as np

from lowlight_cli.imaging.pixels import quantise
from lowlight_cli.models.condition import brighten_array


def auto_gamma(rgb: np.ndarray, target_brightness: float = 0.42) -> np.ndarray:
    """The same luminance gamma the model is conditioned on, alone."""
    return brighten_array(rgb, target_brightness)


def clahe_on_l(rgb: np.ndarray) -> np.ndarray:
    """CLAHE on the L channel of CIELAB (clip 2.0, 8×8 tiles), chroma untouched."""
    lab = cv2.cvtColor(quantise(rgb), cv2.COLOR_RGB2LAB)
    lab[:, :, 0] = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(lab[:, :, 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB).astype(np.float32) / 255.0


BASELINES = {"gamma": auto_gamma, "clahe": clahe_on_l}
