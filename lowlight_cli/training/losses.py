"""Training losses: the diffusion objective and the semantic-context regularisation.

The semantic-context term (CUGD) asks that inside every prior region the
predicted clean image has the same colour statistics (mean and spread) as
the target. A pixel-wise loss alone lets a small network trade one region's
colour cast for another's; region statistics make a cast inside an object
cost as much as the object is large.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lowlight_cli.models.prior_encoder import region_stats


def semantic_context_loss(
    pred: torch.Tensor, target: torch.Tensor, labels: torch.Tensor, num_labels: int
) -> torch.Tensor:
    """Area-weighted L1 between per-region mean and std of `pred` and `target` (regions > 0 only)."""
    pred_mean, pred_std, counts = region_stats(pred, labels, num_labels)
    target_mean, target_std, _ = region_stats(target, labels, num_labels)
    weights = counts[:, 1:] / counts[:, 1:].sum(dim=1, keepdim=True).clamp_min(1.0)
    per_region = (pred_mean - target_mean).abs()[:, 1:] + 0.5 * (pred_std - target_std).abs()[:, 1:]
    return (per_region * weights).sum(dim=1).mean()


def diffusion_loss(x0_pred: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """x_0-prediction objective; L1 keeps edges sharper than L2 at equal PSNR."""
    return F.l1_loss(x0_pred, x0)


def _gaussian_window(device: torch.device, dtype: torch.dtype, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, device=device, dtype=dtype) - size // 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return (g / g.sum()).view(1, 1, 1, size)


def ssim_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 − mean SSIM (Gaussian window 11, σ 1.5, per channel, as `metrics.ssim`): rewards contrast and
    structure that L1 alone leaves flat, since a hazy, low-contrast output loses on SSIM's variance terms."""
    channels = pred.shape[1]
    g = _gaussian_window(pred.device, pred.dtype)

    def blur(x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, g.expand(channels, 1, 1, -1), groups=channels)
        return F.conv2d(x, g.transpose(-1, -2).expand(channels, 1, -1, 1), groups=channels)

    c1, c2 = 0.01**2, 0.03**2
    mx, my = blur(pred), blur(target)
    sxx, syy, sxy = blur(pred * pred) - mx * mx, blur(target * target) - my * my, blur(pred * target) - mx * my
    ssim_map = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return 1.0 - ssim_map.mean()


def colour_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean angle-like distance (1 − cosine) between pixel colours: a tint costs even where L1 is small,
    as in dark areas, whose small values make a green or purple cast cheap for L1."""
    return (1.0 - F.cosine_similarity(pred + 1e-3, target + 1e-3, dim=1)).mean()


def structure_and_colour(
    pred: torch.Tensor, target: torch.Tensor, ssim_weight: float, colour_weight: float
) -> torch.Tensor:
    """The weighted structure (SSIM) and colour terms (zero when both weights are)."""
    loss = pred.new_zeros(())
    if ssim_weight:
        loss = loss + ssim_weight * ssim_loss(pred, target)
    if colour_weight:
        loss = loss + colour_weight * colour_loss(pred, target)
    return loss
