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


def semantic_context_loss(pred: torch.Tensor, target: torch.Tensor, labels: torch.Tensor, num_labels: int) -> torch.Tensor:
    """Area-weighted L1 between per-region mean and std of `pred` and `target` (regions > 0 only)."""
    pred_mean, pred_std, counts = region_stats(pred, labels, num_labels)
    target_mean, target_std, _ = region_stats(target, labels, num_labels)
    weights = counts[:, 1:] / counts[:, 1:].sum(dim=1, keepdim=True).clamp_min(1.0)
    per_region = (pred_mean - target_mean).abs()[:, 1:] + 0.5 * (pred_std - target_std).abs()[:, 1:]
    return (per_region * weights).sum(dim=1).mean()


def diffusion_loss(x0_pred: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """x_0-prediction objective; L1 keeps edges sharper than L2 at equal PSNR."""
    return F.l1_loss(x0_pred, x0)
