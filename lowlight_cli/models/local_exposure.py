"""Local exposure: less gain where the camera had already lit the scene.

One global exposure serves a dark room, but not a floodlit facade on a
black night sky or a candle beside a window: the gain that lifts the dark
frame pushes the lit part several stops past white, and a tone curve can
then only flatten it (a white block where the columns were). Here, before
the curve, the exposed log luminance is split into a base layer (an
edge-aware local mean: a self-guided filter, He et al., in log2 units) and
the detail around it; only the base layer is compressed above a knee, so
lit regions come down as a whole while their detail keeps its contrast.
The filter keeps strong edges (a facade against the sky) in the base layer,
so the compression does not bleed across them as a halo.

How much is needed is the highlight roll-off's call (`tone.roll_off_highlights`),
per photo: `strength` 0 leaves a photo untouched, 1 compresses everything
above the knee 5:1.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F

from lowlight_cli.imaging.filters import box_clipped, guided_coefficients

RADIUS = 0.04  # the base layer's window radius, as a share of the image's long side
FIT_SIZE = 256  # long side at which the base layer's filter is fitted
EDGE_EPS = 1.0  # variance (stops²) at which the filter starts to keep an edge instead of averaging over it
KNEE_AT_FULL = -2.0  # log2 exposed luminance (linear 0.25) above which full strength compresses
SLOPE_AT_FULL = 0.2  # the base layer's slope above the knee at full strength


def base_layer(log_lum: torch.Tensor) -> torch.Tensor:
    """(B,1,H,W) log luminance → its edge-aware local mean (a self-guided filter).

    The filter's coefficients are smooth at the scale of its window, so they are fitted on a copy no longer
    than `FIT_SIZE` and upsampled (He & Sun's fast guided filter): the cost no longer grows with the photo.
    """
    height, width = log_lum.shape[-2:]
    scale = max(height, width) / FIT_SIZE
    small = (
        F.interpolate(log_lum, size=(max(1, round(height / scale)), max(1, round(width / scale))), mode="area")
        if scale > 1
        else log_lum
    )
    radius = max(1, round(RADIUS * max(small.shape[-2:])))
    a, b = guided_coefficients(small, small, EDGE_EPS, partial(box_clipped, radius=radius))
    if scale > 1:
        a, b = (F.interpolate(c, size=(height, width), mode="bilinear", align_corners=False) for c in (a, b))
    return a * log_lum + b


def compression(lum: torch.Tensor, strength: torch.Tensor) -> torch.Tensor:
    """The factor (B,1,H,W), at most 1, that brings exposed luminance `lum` (B,1,H,W) down where its
    base layer passes the knee; `strength` (B,) in [0, 1] moves the knee from 0 to `KNEE_AT_FULL` and the
    slope above it from 1 to `SLOPE_AT_FULL`."""
    strength = strength.view(-1, 1, 1, 1).to(lum.dtype)
    knee = KNEE_AT_FULL * strength
    slope = 1.0 - (1.0 - SLOPE_AT_FULL) * strength
    over = F.relu(base_layer(torch.log2(lum.clamp_min(1e-6))) - knee)
    return torch.exp2(-(1.0 - slope) * over)
