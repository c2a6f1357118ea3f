"""SAM Prior Encoder (SPE): turns a region label map into what the denoiser consumes.

Two outputs, following SPGD/CUGD:
- a structural prior map (region-pooled colour, boundary, coverage) concatenated
  to the denoiser's input, so every pixel knows its region's average and edges;
- region tokens (one per region, plus a learned null token) that the U-Net's
  features attend to by cross-attention, so distant pixels of the same region
  are enhanced consistently.
Pooling is a scatter-add over labels, so cost is linear in pixels and the
number of regions never changes the network's shape.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PRIOR_MAP_CHANNELS = 5  # region-mean RGB, boundary, coverage
DESCRIPTOR_DIM = 10  # mean RGB, std RGB, area, centroid y/x, score


def region_pool(values: torch.Tensor, labels: torch.Tensor, num_labels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-label sums of `values` (B,C,H,W) and pixel counts, over labels (B,H,W) in [0, num_labels).

    Returns sums (B,num_labels,C) and counts (B,num_labels,1), in float32
    whatever the input's dtype: in bf16 a running count stops at 256 (256 + 1
    rounds back to 256), so half-precision sums would be wrong on a GPU.
    """
    batch, channels = values.shape[:2]
    index = labels.reshape(batch, -1, 1)
    flat = values.reshape(batch, channels, -1).transpose(1, 2).float()
    sums = flat.new_zeros(batch, num_labels, channels).scatter_add_(1, index.expand(-1, -1, channels), flat)
    counts = flat.new_zeros(batch, num_labels, 1).scatter_add_(1, index, torch.ones_like(flat[..., :1]))
    return sums, counts


def region_stats(
    image: torch.Tensor, labels: torch.Tensor, num_labels: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-region mean, std (B,num_labels,C) and pixel count (B,num_labels,1) of `image`, in its dtype.

    Accumulated in float32 (see `region_pool`), only the results are rounded.
    """
    image32 = image.float()
    sums, counts = region_pool(torch.cat([image32, image32 * image32], dim=1), labels, num_labels)
    channels = image.shape[1]
    safe = counts.clamp_min(1.0)
    mean = sums[..., :channels] / safe
    var = (sums[..., channels:] / safe - mean * mean).clamp_min(0.0)
    return mean.to(image.dtype), torch.sqrt(var + 1e-6).to(image.dtype), counts.to(image.dtype)


class PriorEncoder(nn.Module):
    """Region descriptors → tokens; label map → structural prior map."""

    def __init__(self, max_regions: int, token_dim: int, map_scale: int = 1) -> None:
        super().__init__()
        self.max_regions = max_regions
        self.map_scale = map_scale
        self.embed = nn.Sequential(nn.Linear(DESCRIPTOR_DIM, token_dim), nn.SiLU(), nn.Linear(token_dim, token_dim))
        self.null_token = nn.Parameter(torch.zeros(1, 1, token_dim))

    def forward(
        self, base: torch.Tensor, labels: torch.Tensor, scores: torch.Tensor, boundary: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """base (B,3,H,W); labels (B,H,W) long in [0, max_regions]; scores (B,max_regions); boundary (B,1,H,W).

        Returns prior_map (B,5,H,W), tokens (B,1+max_regions,D) and a key padding
        mask (B,1+max_regions), True where a token is absent.
        """
        batch, _, height, width = base.shape
        num_labels = self.max_regions + 1
        mean, std, counts = region_stats(base, labels, num_labels)
        ys = (
            torch.linspace(0, 1, height, device=base.device, dtype=base.dtype)
            .view(1, 1, height, 1)
            .expand(batch, 1, height, width)
        )
        xs = (
            torch.linspace(0, 1, width, device=base.device, dtype=base.dtype)
            .view(1, 1, 1, width)
            .expand(batch, 1, height, width)
        )
        centroid_sums, exact_counts = region_pool(torch.cat([ys, xs], dim=1), labels, num_labels)
        centroid = (centroid_sums / exact_counts.clamp_min(1.0)).to(base.dtype)
        area = counts / float(height * width)
        score = torch.cat([scores.new_zeros(batch, 1), scores], dim=1).unsqueeze(-1)
        descriptors = torch.cat([mean, std, area.sqrt(), centroid, score], dim=-1)
        tokens = self.embed(descriptors[:, 1:])
        tokens = torch.cat([self.null_token.expand(batch, -1, -1), tokens], dim=1)
        absent = counts[:, :, 0] == 0
        absent[:, 0] = False  # the null token is always there, so attention is never empty

        covered = (labels > 0).unsqueeze(1).to(base.dtype)
        region_mean_map = torch.gather(mean, 1, labels.reshape(batch, -1, 1).expand(-1, -1, 3))
        region_mean_map = region_mean_map.transpose(1, 2).reshape(batch, 3, height, width) * covered
        prior_map = torch.cat([region_mean_map, boundary, covered], dim=1)
        if self.map_scale > 1:  # block means, bilinearly spread back: no sharp edge the image does not have
            coarse = F.avg_pool2d(prior_map, self.map_scale, ceil_mode=True)
            prior_map = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
        return prior_map, tokens, absent
