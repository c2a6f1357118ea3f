"""The conditional denoiser: a compact U-Net guided by the SAM Prior Encoder.

Input per pixel: the noisy residual x_t, the brightened base image and the
structural prior map. Timestep and exposure gain enter every residual block
as an embedding. At the two coarsest levels U-Net features cross-attend to
region tokens; the bottleneck also self-attends, which is where global
context (overall colour cast, scene brightness) is cheapest to mix.
The network predicts the clean residual x_0 directly: with few sampling
steps, x_0 prediction is the parameterisation that degrades least.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, cast

import torch
import torch.nn.functional as F
from torch import nn

from lowlight_cli.models.config import ModelConfig
from lowlight_cli.models.prior_encoder import PRIOR_MAP_CHANNELS, PriorEncoder
from lowlight_cli.models.tone import ToneEstimator

if TYPE_CHECKING:
    from lowlight_cli.models.condition import Conditioning


def timestep_embedding(timesteps: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of (B,) timesteps, as in DDPM."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=timesteps.device, dtype=torch.float32) / half)
    args = timesteps.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=min(8, channels), num_channels=channels)


class ResBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1 = group_norm(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2 = group_norm(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(F.silu(h))
        return h + self.skip(x)


class RegionAttention(nn.Module):
    """Optional self-attention over positions, then cross-attention to region tokens."""

    def __init__(self, channels: int, token_dim: int, heads: int, self_attention: bool) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(channels, heads, batch_first=True) if self_attention else None
        self.norm_self = nn.LayerNorm(channels) if self_attention else None
        self.norm_cross = nn.LayerNorm(channels)
        self.cross_attn = nn.MultiheadAttention(channels, heads, kdim=token_dim, vdim=token_dim, batch_first=True)

    def attention_mask(self, absent: torch.Tensor, positions: int) -> torch.Tensor:
        """`absent` (B,S) as the attention mask (B·heads, positions, S) the cross-attention takes.

        The same masking as `key_padding_mask`, whose shape check (`torch._check_with`) imports torch's
        symbolic-shape machinery and sympy on first use: 0.8 s of every `lowlight enhance` run.
        """
        heads = self.cross_attn.num_heads
        return absent[:, None, None, :].expand(-1, heads, positions, -1).reshape(-1, positions, absent.shape[1])

    def forward(self, x: torch.Tensor, tokens: torch.Tensor, absent: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        seq = x.flatten(2).transpose(1, 2)
        if self.self_attn is not None:
            q = cast(nn.LayerNorm, self.norm_self)(seq)  # set with self_attn
            seq = seq + self.self_attn(q, q, q, need_weights=False)[0]
        q = self.norm_cross(seq)
        seq = (
            seq
            + self.cross_attn(
                q, tokens, tokens, attn_mask=self.attention_mask(absent, seq.shape[1]), need_weights=False
            )[0]
        )
        return seq.transpose(1, 2).reshape(batch, channels, height, width)


class PriorGuidedDenoiser(nn.Module):
    """U-Net over [x_t, base, prior map] predicting the clean (scaled) residual."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        base_ch = config.base_channels
        chans = [base_ch * m for m in config.channel_mults]
        emb_dim = 4 * base_ch
        self.time_mlp = nn.Sequential(nn.Linear(base_ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.gain_mlp = nn.Sequential(nn.Linear(1, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        # The global branch that develops the base; the U-Net below refines it locally.
        self.tone = ToneEstimator(look=config.tone_look) if config.tone_curve else None
        self.prior_encoder = PriorEncoder(config.max_regions, config.token_dim, config.prior_map_scale)
        self.stem = nn.Conv2d(3 + 3 + PRIOR_MAP_CHANNELS, chans[0], 3, padding=1)

        self.down_blocks = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        for i, ch in enumerate(chans):
            self.down_blocks.append(ResBlock(chans[max(i - 1, 0)] if i else chans[0], ch, emb_dim))
            if i < len(chans) - 1:
                self.downsamples.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
        deepest = chans[-1]
        self.mid1 = ResBlock(deepest, deepest, emb_dim)
        self.mid_attn = RegionAttention(deepest, config.token_dim, config.attn_heads, self_attention=True)
        self.mid2 = ResBlock(deepest, deepest, emb_dim)
        self.up_blocks = nn.ModuleList()
        self.upsamples = nn.ModuleList()
        for i in reversed(range(len(chans))):
            in_ch = (deepest if i == len(chans) - 1 else chans[i + 1]) + chans[i]
            self.up_blocks.append(ResBlock(in_ch, chans[i], emb_dim))
            if i > 0:
                self.upsamples.append(nn.Conv2d(chans[i], chans[i], 3, padding=1))
        # Cross-attention to region tokens one level above the bottleneck too,
        # where features still resolve object-sized regions.
        self.up_attn = (
            RegionAttention(chans[-2], config.token_dim, config.attn_heads, self_attention=False)
            if len(chans) > 1
            else None
        )
        self.out_norm = group_norm(chans[0])
        self.out_conv = nn.Conv2d(chans[0], 3, 3, padding=1)
        nn.init.zeros_(self.out_conv.weight)
        nn.init.zeros_(cast(torch.Tensor, self.out_conv.bias))  # Conv2d's bias=True

    def forward(self, x_t: torch.Tensor, timesteps: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        """Predict x_0 (the scaled residual target − base) from x_t at `timesteps`, conditioned on `cond`.

        Spatial sides must be multiples of `config.downsample_factor`.
        """
        base = cond.base
        emb = self.time_mlp(timestep_embedding(timesteps, self.config.base_channels).to(base.dtype))
        emb = emb + self.gain_mlp(cond.log_gain.view(-1, 1).to(emb.dtype))
        prior_map, tokens, absent = self.prior_encoder(base, cond.labels, cond.scores, cond.boundary)
        h = self.stem(torch.cat([x_t, base, prior_map], dim=1))
        skips = []
        for i, block in enumerate(self.down_blocks):
            h = block(h, emb)
            skips.append(h)
            if i < len(self.downsamples):
                h = self.downsamples[i](h)
        h = self.mid1(h, emb)
        h = self.mid_attn(h, tokens, absent)
        h = self.mid2(h, emb)
        levels = len(self.down_blocks)
        for j, block in enumerate(self.up_blocks):
            h = block(torch.cat([h, skips[levels - 1 - j]], dim=1), emb)
            if j == 1 and self.up_attn is not None:
                h = self.up_attn(h, tokens, absent)
            if j < len(self.upsamples):
                h = self.upsamples[j](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.out_conv(F.silu(self.out_norm(h)))
