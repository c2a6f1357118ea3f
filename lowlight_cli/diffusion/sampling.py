"""Running the denoiser: DDIM sampling at working resolution or in full-resolution tiles.

Noise always comes from a CPU generator seeded by `--seed`, so a given seed
gives the same image on every device, and video frames can share one noise
field (no flicker from fresh noise per frame).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lowlight_cli.diffusion.ddim import DDIMScheduler
from lowlight_cli.models.condition import Conditioning
from lowlight_cli.models.denoiser import PriorGuidedDenoiser


def initial_noise(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Seeded standard normal noise from a CPU generator (device-independent)."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def start_of_sampling(noise: torch.Tensor, mean_start: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """x at the last timestep, and the noise direction of the first DDIM transition.

    A mean-start model sees zeros (the noise's mean) there and gets the noise
    draw at its first transition; otherwise x starts as the draw itself and the
    transition infers its noise from it.
    """
    return (torch.zeros_like(noise), noise) if mean_start else (noise, None)


def pad_to_multiple(cond: Conditioning, noise: torch.Tensor, multiple: int) -> tuple[Conditioning, torch.Tensor]:
    """Replicate-pad on the bottom/right so both sides divide by `multiple` (works even for 1×1)."""
    height, width = cond.base.shape[-2:]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if not pad_h and not pad_w:
        return cond, noise
    pad = (0, pad_w, 0, pad_h)
    labels = F.pad(cond.labels[:, None].float(), pad, mode="replicate")[:, 0].long()
    return (
        Conditioning(
            F.pad(cond.base, pad, mode="replicate"),
            cond.log_gain,
            labels,
            cond.scores,
            F.pad(cond.boundary, pad, mode="replicate"),
        ),
        F.pad(noise, pad, mode="replicate"),
    )


def tile_windows(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size `tile` covering [0, length) with at least `overlap` overlap."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride)) + [length - tile]
    return sorted(set(starts))


def blend_weight(height: int, width: int, overlap: int, device: torch.device) -> torch.Tensor:
    """A separable ramp that is 1 inside and falls towards tile borders, so seams average out."""

    def ramp(n: int) -> torch.Tensor:
        r = torch.ones(n, device=device)
        k = min(overlap, n // 2)
        if k > 0:
            edge = torch.linspace(0.05, 1.0, k, device=device)
            r[:k] = edge
            r[-k:] = edge.flip(0)
        return r

    return ramp(height)[:, None] * ramp(width)[None, :]


@torch.no_grad()
def predict_x0(
    model: PriorGuidedDenoiser, x_t: torch.Tensor, timestep: int, cond: Conditioning, tile: int | None, overlap: int
) -> torch.Tensor:
    """The model's x_0 estimate for the whole image, in overlapping tiles if `tile` is set."""
    height, width = x_t.shape[-2:]
    steps = torch.full((x_t.shape[0],), timestep, device=x_t.device, dtype=torch.long)
    if tile is None or (height <= tile and width <= tile):
        return model(x_t, steps, cond)
    total = torch.zeros_like(x_t)
    weights = torch.zeros_like(x_t[:, :1])
    for y0 in tile_windows(height, tile, overlap):
        for x0 in tile_windows(width, tile, overlap):
            ys, xs = slice(y0, y0 + tile), slice(x0, x0 + tile)
            out = model(x_t[..., ys, xs], steps, cond.crop(ys, xs))
            w = blend_weight(out.shape[-2], out.shape[-1], overlap, x_t.device)
            total[..., ys, xs] += out * w
            weights[..., ys, xs] += w
    return total / weights


@torch.no_grad()
def sample_residual(
    model: PriorGuidedDenoiser,
    cond: Conditioning,
    steps: int,
    seed: int,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    tile: int | None = None,
    overlap: int = 32,
) -> torch.Tensor:
    """Sample the clean residual (target − base, unscaled) for `cond`; returns (1,3,H,W) float32 on CPU.

    A regression checkpoint (config.diffusion False) is a single forward pass.
    """
    config = model.config
    height, width = cond.base.shape[-2:]
    noise = initial_noise((1, 3, height, width), seed)
    multiple = config.downsample_factor
    if tile is not None:
        tile = max(multiple, tile - tile % multiple)
    cond, noise = pad_to_multiple(cond, noise, multiple)
    cond = cond.to(device, dtype)
    scheduler = DDIMScheduler(config.num_train_timesteps)
    if not config.diffusion:
        x0 = predict_x0(model, torch.zeros_like(noise, device=device, dtype=dtype), 0, cond, tile, overlap)
    else:
        scheduler.set_timesteps(steps)
        noise = noise.to(device, dtype)
        # With mean start the 1-step output does not depend on the noise draw.
        x, first_eps = start_of_sampling(noise, config.mean_start)
        x0 = x
        for index, timestep in enumerate(scheduler.timesteps.tolist()):
            x0 = predict_x0(model, x, timestep, cond, tile, overlap)
            x = scheduler.step(x0, timestep, x, eps=first_eps if index == 0 else None)
    return (x0[..., :height, :width].float() / config.residual_scale).cpu()
