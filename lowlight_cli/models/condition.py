"""The conditioning recipe shared by training and inference.

The denoiser never sees the raw dark image alone: it gets a brightened
"base" and learns only the residual from base to the well-exposed image.
The base is either developed by the model's global tone branch (exposure,
white balance and tone curve predicted from a thumbnail of the whole photo,
`models/tone.py`) or, for first-release checkpoints, made by a
parameter-free luminance auto-gamma (mean near `target_brightness`, chroma
kept). `develop` is the one place that chooses, for training and inference
alike, so the network spends its capacity on what a global curve cannot do:
noise, local contrast and local casts.

`Conditioning` is everything the denoiser is conditioned on, and
`Conditioning.from_prior` / `prior_tensors` are the one translation of a
`RegionPrior` into tensors, for the sampler and the training batches alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from lowlight_cli.imaging.colour import REC601, luma
from lowlight_cli.imaging.reconstruct import upsample_rows
from lowlight_cli.models.tone import (
    ToneEstimator,
    ToneParams,
    apply_tone,
    apply_tone_array,
    hold_exposed,
    local_factor,
    roll_off_highlights,
    target_gains,
    with_gains,
)
from lowlight_cli.priors.region_prior import RegionPrior


def brighten(low: torch.Tensor, target_brightness: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Auto-gamma on luminance with chroma kept.

    Returns the base image (B,3,H,W) in [0,1] and log(mean gain) per image (B,),
    which tells the network how much the noise was amplified.
    """
    lum = luma(low, REC601).clamp_min(1e-4)
    mean = lum.mean(dim=(1, 2, 3)).clamp(1e-4, 0.99)
    base = with_gamma(low, auto_gamma(mean, target_brightness))
    return base, log_mean_gain(base, mean)


def auto_gamma(mean: torch.Tensor, target_brightness: float) -> torch.Tensor:
    """The gamma (B,) that `brighten` lifts a photo of mean luma `mean` (B,) with."""
    return (math.log(target_brightness) / torch.log(mean.clamp(1e-4, 0.99))).clamp(0.15, 1.0)


def with_gamma(low: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """(B,3,H,W) `low` with its luma raised to `gamma` (B,), chroma kept."""
    lum = luma(low, REC601).clamp_min(1e-4)
    return (low * (lum ** gamma.view(-1, 1, 1, 1) / lum)).clamp(0.0, 1.0)


def log_mean_gain(base: torch.Tensor, low_mean: torch.Tensor) -> torch.Tensor:
    """log(mean luminance of `base` / `low_mean`) per image (B,): how much brightening amplified the noise."""
    return torch.log(luma(base, REC601).mean(dim=(1, 2, 3)).clamp_min(1e-4) / low_mean)


def judge(
    whole: torch.Tensor,
    tone: ToneEstimator,
    target_thumb: torch.Tensor | None = None,
    roll_off: bool = True,
    local: bool | None = False,
    keep_level: bool = False,
) -> ToneParams:
    """The tone branch's parameters for the whole photo(s) `whole` (sRGB, any size).

    `target_thumb` (training only) is the whole target photo: exposure and
    white balance are then the target's own (see `models/tone.py`).
    `roll_off` guards highlights at inference (`tone.roll_off_highlights`) and
    holds a photo that is already exposed as it is (`tone.hold_exposed`);
    training turns both off, so the curve it learns is the one it is scored on;
    `local` lets it lower lit regions locally first (`--highlights local`; None: for a night scene only),
    `keep_level` hold a part-lit photo's lit regions near their level there (`--highlights local`).
    """
    params = tone(whole)
    if target_thumb is not None:
        return with_gains(params, target_gains(whole, target_thumb, params.black.detach()))
    return hold_exposed(roll_off_highlights(params, whole, local, keep_level), whole) if roll_off else params


def develop(
    low: torch.Tensor,
    tone: ToneEstimator | None,
    target_brightness: float,
    thumb: torch.Tensor | None = None,
    ev: float | torch.Tensor = 0.0,
    target_thumb: torch.Tensor | None = None,
    roll_off: bool = True,
    params: ToneParams | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The base (B,3,H,W) the denoiser refines, and log(mean gain) per image (B,).

    `thumb` is the whole photo (any size) when `low` is a crop or tile of it:
    the global judgement must come from the whole frame. `ev` (stops) biases
    the tone branch's exposure; the auto-gamma base of first-release models has
    no exposure to bias, so a non-zero `ev` there is an error. `target_thumb`
    and `roll_off` are `judge`'s; `params`, when given, is a judgement already
    made (the pipeline's, with its `--highlights` choice; video smooths it over a shot).
    """
    if tone is None:
        if torch.is_tensor(ev) or ev != 0:
            raise ValueError("this model has no tone branch: an exposure bias needs a model trained with one")
        return brighten(low, target_brightness)
    if params is None:
        params = judge(low if thumb is None else thumb, tone, target_thumb, roll_off)
    base = apply_tone(low, params, ev).to(low.dtype)
    return base, log_mean_gain(base, luma(low, REC601).mean(dim=(1, 2, 3)).clamp(1e-4, 0.99))


def develop_full(
    rgb: np.ndarray,
    working: torch.Tensor,
    params: ToneParams | None,
    target_brightness: float,
    ev: float = 0.0,
) -> Callable[[slice], np.ndarray]:
    """The full-resolution photo `rgb` (H×W×3) developed as its working copy `working` (1,3,h,w) was, band by
    band: the returned function gives a band of rows as (3,n,W) planes. By the tone branch's `params`, or,
    for a model without one (None), by the auto-gamma of the working copy's mean.

    The reconstruction asks for strips (`imaging.reconstruct`), so a 12 MP photo is never developed whole;
    the local exposure factor, which looks at the whole photo, is the working copy's, upsampled strip by
    strip (it is smooth: `local_factor`). The reconstruction carries the model's correction of the working
    copy onto this base, so the detail of the full photo is developed by the same curve as its working
    copy, not by a local linear fit of it. It runs on the CPU, where the tone branch lives
    (`pipeline.Pipeline`).
    """
    height, width = rgb.shape[:2]
    if params is None:
        gamma = auto_gamma(luma(working, REC601).clamp_min(1e-4).mean(dim=(1, 2, 3)), target_brightness)

        def gamma_rows(rows: slice) -> np.ndarray:
            part = torch.from_numpy(np.ascontiguousarray(rgb[rows], dtype=np.float32))
            with torch.no_grad():
                return with_gamma(part.permute(2, 0, 1)[None], gamma)[0].contiguous().numpy()

        return gamma_rows
    with torch.no_grad():
        small = local_factor(working, params, ev)
    factor = None if small is None else small[0, 0].numpy()

    def tone_rows(rows: slice) -> np.ndarray:
        part = None if factor is None else upsample_rows(factor, height, width, rows)
        developed = apply_tone_array(np.asarray(rgb[rows], np.float32), params, ev, part)
        return np.ascontiguousarray(np.moveaxis(developed, -1, 0))

    return tone_rows


def brighten_array(rgb: np.ndarray, target_brightness: float) -> np.ndarray:
    """`brighten` for one H×W×3 float array in [0,1] (priors, the classical reference)."""
    tensor = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1)[None]
    base, _ = brighten(tensor, target_brightness)
    return base[0].permute(1, 2, 0).numpy()


def prior_tensors(prior: RegionPrior, max_regions: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A prior as the denoiser reads it: labels (H,W) long capped at `max_regions`, scores (max_regions,)
    zero-padded, boundary (1,H,W) float32. One image, no batch axis (training stacks them)."""
    scores = np.zeros(max_regions, np.float32)
    scores[: min(prior.num_regions, max_regions)] = prior.scores[:max_regions]
    labels = torch.from_numpy(np.minimum(prior.labels, max_regions).astype(np.int64))
    return labels, torch.from_numpy(scores), torch.from_numpy(prior.boundary.astype(np.float32))[None]


@dataclass
class Conditioning:
    """Everything the denoiser is conditioned on, as batched tensors at one resolution."""

    base: torch.Tensor  # (B,3,H,W)
    log_gain: torch.Tensor  # (B,)
    labels: torch.Tensor  # (B,H,W) long
    scores: torch.Tensor  # (B,max_regions)
    boundary: torch.Tensor  # (B,1,H,W)

    @classmethod
    def from_prior(
        cls, base: torch.Tensor, log_gain: torch.Tensor, prior: RegionPrior, max_regions: int
    ) -> Conditioning:
        """One image's conditioning: its (1,3,H,W) base, (1,) log gain and region prior."""
        labels, scores, boundary = prior_tensors(prior, max_regions)
        return cls(base, log_gain, labels[None], scores[None], boundary[None])

    def crop(self, y: slice, x: slice) -> Conditioning:
        return Conditioning(
            self.base[..., y, x], self.log_gain, self.labels[..., y, x], self.scores, self.boundary[..., y, x]
        )

    def rows(self, index: torch.Tensor) -> Conditioning:
        """The batch entries selected by `index` (a mask or indices)."""
        return Conditioning(
            self.base[index], self.log_gain[index], self.labels[index], self.scores[index], self.boundary[index]
        )

    def to(self, device: torch.device, dtype: torch.dtype) -> Conditioning:
        return Conditioning(
            self.base.to(device, dtype),
            self.log_gain.to(device, dtype),
            self.labels.to(device),
            self.scores.to(device, dtype),
            self.boundary.to(device, dtype),
        )
